"""Window: primer padding, dropped unknown tokens, in-place shifting."""

from __future__ import annotations

import numpy as np
import pytest

from mididuet.daemon.music.expression import Encoding, running_median
from mididuet.daemon.music.units import NS_PER_MS
from mididuet.daemon.predict.window import Window, primer_ids

VOCAB = ["C4", "D4", "E4", "0.4.7", "G4"]


def test_default_primer_is_the_vocabulary_in_id_order() -> None:
    window = Window(VOCAB)
    assert window.ids.dtype == np.int32
    assert window.ids.shape == (32,)
    # 32 ids cycling through 0..4, ending so the most recent is 31 % 5 == 1.
    assert list(window.ids) == [i % 5 for i in range(32)]
    assert list(Window(VOCAB).ids) == list(window.ids)  # deterministic


def test_given_primer_is_repeated_and_ends_on_its_last_token() -> None:
    window = Window(VOCAB, primer=["E4", "unknown", "0.4.7"])
    assert window.tokens()[-2:] == ["E4", "0.4.7"]
    assert set(window.tokens()) == {"E4", "0.4.7"}


def test_a_long_primer_keeps_its_last_32_tokens() -> None:
    primer = ["C4"] * 10 + ["D4"] * 32
    assert primer_ids({t: i for i, t in enumerate(VOCAB)}, primer) == [1] * 32


def test_a_primer_without_known_tokens_falls_back_to_the_vocabulary() -> None:
    assert list(Window(VOCAB, primer=["X9"]).ids) == list(Window(VOCAB).ids)


def test_push_shifts_left_and_drops_unknown_tokens() -> None:
    window = Window(VOCAB)
    before = window.ids.copy()
    assert window.push("G4")
    assert list(window.ids[:-1]) == list(before[1:])
    assert window.ids[-1] == 4
    assert not window.push("F#7")
    assert window.ids[-1] == 4


def test_push_id_refuses_ids_outside_the_vocabulary() -> None:
    with pytest.raises(ValueError, match=r"range 0\.\.4"):
        Window(VOCAB).push_id(5)


def test_copy_is_independent() -> None:
    window = Window(VOCAB)
    other = window.copy()
    other.push("G4")
    assert window.ids[-1] == 1
    assert other.ids[-1] == 4


def test_the_pulse_and_level_span_the_bundle_s_history_as_in_training() -> None:
    # 12 IOIs of 100 ms, then 11 of 500 ms: over the 23, the low median is 100 ms; over the
    # last 16 (the default history) it would be 500 ms.
    encoding = Encoding(history=24)
    window = Window(VOCAB, encoding=encoding)
    iois = [100] * 12 + [500] * 11
    velocities = [40] * 12 + [90] * 12
    onsets = np.concatenate([[0], np.cumsum(iois)]) * NS_PER_MS
    for onset, velocity in zip(onsets, velocities, strict=True):
        window.push_played(0, int(onset), velocity, 60, 60, 1)
    assert window.pulse_ns() == running_median([i * NS_PER_MS for i in iois], len(iois), 24) == 100 * NS_PER_MS
    assert window.level() == running_median(velocities, len(velocities), 24) == 40


def test_each_token_carries_how_long_the_oldest_token_still_sounding_has_sounded() -> None:
    """The sounding feature, as training derives it: the player's tokens sound until their
    lengths are known (set_length), mididuet's own for the length they were given."""
    encoding = Encoding()
    window = Window(VOCAB, encoding=encoding)
    sounding = encoding.features.index("sounding")
    ms = NS_PER_MS
    window.push_played(0, 0, 64, 60, 60, 1)  # the player's: sounding until told otherwise
    window.push_played(1, 500 * ms, 64, 62, 62, 1, length_ns=200 * ms)  # mididuet's own, short
    window.push_played(2, 1000 * ms, 64, 64, 64, 1, length_ns=2000 * ms)
    window.push_played(3, 1500 * ms, 64, 65, 65, 1)  # the first still sounds: 1.5 s, 3 pulses
    assert window.features[-1, sounding] == 1 + encoding.length.index(3.0)
    window.set_length(0, 1200 * ms)  # the player's first token had stopped at 1.2 s
    window.push_played(4, 2000 * ms, 64, 67, 67, 1)  # the oldest still sounding began at 1 s
    assert window.features[-1, sounding] == 1 + encoding.length.index(2.0)
    window.set_length(1500 * ms, 100 * ms)
    window.set_length(2000 * ms, 300 * ms)
    window.push_played(0, 4000 * ms, 64, 69, 69, 1)  # everything stopped by 3 s
    assert window.features[-1, sounding] == encoding.nothing_sounding
    copy = window.copy()
    copy.set_length(4000 * ms, 10 * ms)
    copy.push_played(0, 4500 * ms, 64, 60, 60, 1)
    assert copy.features[-1, sounding] == encoding.nothing_sounding
    window.push_played(0, 4500 * ms, 64, 60, 60, 1)  # the original's token 5 still sounds
    assert window.features[-1, sounding] != encoding.nothing_sounding


def test_each_token_carries_the_tokens_before_it_as_they_stand_at_its_onset() -> None:
    """The known features, as training derives them: a token whose notes had stopped gives
    its length, one still sounding (the player's, whose end is not known yet, or mididuet's
    scheduled past the onset) how long it has sounded; in the pulse after the token pushed,
    each frozen once pushed; primer and later-begun tokens unknown."""
    encoding, window = _with_a_pulse_of_500_ms()  # three of mididuet's, 100 ms each
    first = len(encoding.trunk_features) + encoding.loud_count
    grid = len(encoding.length)

    def known() -> list[int]:
        return window.features[-1, first:].tolist()

    def stopped(pulses: float) -> int:
        return 1 + encoding.length.index(pulses)

    def sounding(pulses: float) -> int:
        return 1 + grid + encoding.length.index(pulses)

    ms = NS_PER_MS
    window.push_played(1, 1500 * ms, 64, 62, 62, 1)  # the player's: sounding until its end is known
    window.push_played(2, 2000 * ms, 64, 64, 64, 1, length_ns=1500 * ms)  # mididuet's, to 3.5 s
    window.push_played(3, 2500 * ms, 64, 65, 65, 1)
    # Latest first: mididuet's at 2 s (sounded 0.5 s: 1 pulse), the player's at 1.5 s (2),
    # the three stopped at 100 ms (1/5 pulse: the grid's 1/4), then the primer's.
    assert known() == [sounding(1.0), sounding(2.0), stopped(0.25), stopped(0.25), stopped(0.25), 0, 0, 0]
    frozen = known()
    window.set_length(1500 * ms, 1500 * ms)  # the player's released at 3 s
    window.push_played(4, 4000 * ms, 64, 67, 67, 1)
    assert known()[:3] == [sounding(3.0), stopped(3.0), stopped(3.0)], "both ended by 4 s"
    assert window.features[-2, first:].tolist() == frozen, "a token's features never change once pushed"
    window.push_played(1, 4510 * ms, 64, 62, 62, 1, length_ns=400 * ms)  # mididuet's, on the beat
    window.push_played(2, 4500 * ms, 64, 64, 64, 1)  # the player's, struck 10 ms before it
    assert known()[0] == 0, "begun after this token: not known at its onset"


def test_a_version_4_window_reads_17_features_and_no_known_ones() -> None:
    from mididuet.daemon.music.expression import FEATURES_BY_VERSION

    window = Window(VOCAB, encoding=Encoding(features=FEATURES_BY_VERSION[4]))
    window.push_played(0, 0, 64, 60, 60, 1)
    window.push_played(1, 500 * NS_PER_MS, 64, 62, 62, 1, length_ns=100 * NS_PER_MS)
    assert window.features.shape == (32, 17)


def test_a_version_2_window_reads_eight_features() -> None:
    from mididuet.daemon.music.expression import HEADS

    window = Window(VOCAB, encoding=Encoding(features=HEADS))
    window.push_played(0, 0, 64, 60, 60, 1)
    assert window.features.shape == (32, len(HEADS))


def _with_a_pulse_of_500_ms() -> tuple[Encoding, Window]:
    """A window of three short tokens 500 ms apart (the pulse then known), and its encoding."""
    encoding = Encoding()
    window = Window(VOCAB, encoding=encoding)
    for k in range(3):
        window.push_played(0, k * 500 * NS_PER_MS, 64, 60, 60, 1, length_ns=100 * NS_PER_MS)
    return encoding, window


def test_a_token_that_began_later_does_not_sound_before_one_pushed_after_it() -> None:
    """In jam a player's token enters the window once its chord window closes, after a
    token of mididuet's that began a moment later: that one is not 'still sounding' at the
    player's onset (in training every token before began before)."""
    encoding, window = _with_a_pulse_of_500_ms()
    sounding = encoding.features.index("sounding")
    ms = NS_PER_MS
    window.push_played(1, 1510 * ms, 64, 62, 62, 1, length_ns=400 * ms)  # mididuet's, on the beat
    window.push_played(2, 1500 * ms, 64, 64, 64, 1)  # the player's, struck 10 ms before it
    assert window.features[-1, sounding] == encoding.nothing_sounding


def test_released_notes_stop_sounding_and_forgotten_keys_too_at_a_panic() -> None:
    encoding = Encoding()
    window = Window(VOCAB, encoding=encoding)
    sounding = encoding.features.index("sounding")
    ms = NS_PER_MS
    window.push_played(0, 0, 64, 60, 60, 1)  # the player's, held
    window.push_played(1, 500 * ms, 64, 62, 62, 1, length_ns=5000 * ms)  # mididuet's, long
    window.stopped_sounding(1000 * ms)  # released: mididuet's note stops, the held key does not
    window.push_played(2, 1500 * ms, 64, 64, 64, 1, length_ns=100 * ms)
    assert encoding.length[window.features[-1, sounding] - 1] == 3.0, "the held key, 1.5 s: 3 pulses of 0.5 s"
    window.stopped_sounding(2000 * ms, unknown_too=True)  # a panic forgets held keys
    window.push_played(3, 2500 * ms, 64, 65, 65, 1)
    assert window.features[-1, sounding] == encoding.nothing_sounding


@pytest.mark.parametrize("length_ns", [5000 * NS_PER_MS, None])
def test_a_release_ends_the_last_token_for_the_length_feature_too(length_ns: int | None) -> None:
    """The next token reads the last one's length: cut by a release (mididuet's note, or a
    player's key forgotten at a panic) it stopped then, not "held"."""
    encoding, window = _with_a_pulse_of_500_ms()
    length = encoding.features.index("length")
    ms = NS_PER_MS
    window.push_played(1, 1500 * ms, 64, 62, 62, 1, length_ns=length_ns)
    window.stopped_sounding(2000 * ms, unknown_too=length_ns is None)
    window.push_played(2, 2500 * ms, 64, 64, 64, 1)
    assert window.features[-1, length] == 1 + encoding.length_class(500 * ms, 500 * ms)
    window.push_played(3, 3000 * ms, 64, 65, 65, 1)  # a player's key still down: held
    window.stopped_sounding(3200 * ms)  # a release that forgets no key leaves it so
    window.push_played(4, 3500 * ms, 64, 67, 67, 1)
    assert window.features[-1, length] == encoding.held


def test_a_player_s_release_does_not_end_mididuet_s_token_at_the_same_onset() -> None:
    """In simulated time mididuet's onsets land on the player's grid to the nanosecond:
    a length is set on the tokens of the one whose notes stopped, not on every token that
    began then."""
    encoding, window = _with_a_pulse_of_500_ms()
    sounding = encoding.features.index("sounding")
    ms = NS_PER_MS
    window.push_played(1, 1500 * ms, 64, 62, 62, 1, length_ns=1000 * ms)  # mididuet's, to 2.5 s
    window.push_played(2, 1500 * ms, 64, 64, 64, 1)  # the player's, at the same onset
    window.set_length(1500 * ms, 300 * ms)  # the player's key came up at 1.8 s
    window.push_played(3, 2000 * ms, 64, 65, 65, 1)
    assert window.features[-1, sounding] == 1 + encoding.length.index(1.0), "mididuet's still sounds: 0.5 s"
    window.set_length(2000 * ms, 100 * ms)
    window.set_length(1500 * ms, 600 * ms, own=True)  # legato moves mididuet's own: to 2.1 s
    window.push_played(4, 2200 * ms, 64, 67, 67, 1)
    assert window.features[-1, sounding] == encoding.nothing_sounding
