"""The expressive encoding: a MIDI file's rhythm, lengths, dynamics and voicing, as classes
and back again."""

from __future__ import annotations

import math
from itertools import pairwise
from statistics import median_low

import pytest

from mididuet.daemon.music.expression import (
    DEFAULT,
    FEATURES,
    FEATURES_BY_VERSION,
    HEADS,
    KNOWN,
    KNOWN_TOKENS,
    LOUD,
    LOUD_RANGE,
    LOUD_TOKENS,
    Encoding,
    _nearest_log,
    feature,
    running_median,
)
from mididuet.daemon.music.midi_reader import read_notes, read_records
from mididuet.daemon.play.voicing import voice_chord
from mididuet.daemon.predict.bundle import BundleError
from tests.helpers.midi_files import write_midi

# (start beat, length in beats, pitch): quarters, then eighths, a dotted eighth and a
# sixteenth, an eighth-note triplet, a rest of two beats, a half note.
RHYTHM = [(0, 1, 60), (1, 1, 62), (2, 1, 64), (3, 1, 65), (4, 0.5, 67), (4.5, 0.5, 65), (5, 0.5, 64),
          (5.5, 0.5, 62), (6, 0.75, 60), (6.75, 0.25, 62), (7, 1 / 3, 64), (7 + 1 / 3, 1 / 3, 65),
          (7 + 2 / 3, 1 / 3, 67), (8, 1, 69), (11, 2, 72), (13, 1, 71)]


def test_delays_snap_to_the_musical_grid() -> None:
    enc = DEFAULT
    assert enc.delay[enc.delay_class(1.0, 1.0)] == 1.0
    assert enc.delay[enc.delay_class(0.34, 1.0)] == pytest.approx(1 / 3)
    assert enc.delay[enc.delay_class(0.74, 1.0)] == 0.75
    assert enc.delay[enc.delay_class(1.48, 1.0)] == 1.5
    assert enc.delay[enc.delay_class(40.0, 1.0)] == 8.0, "a long rest is the longest class"
    assert enc.delay_class(1.0, None) is None
    assert enc.velocity[enc.velocity_class(90, 80)] == 9 and enc.velocity[enc.velocity_class(20, 80)] == -30
    assert enc.octave[enc.octave_class(60)] == 4 and enc.octave[enc.octave_class(10)] == 1
    assert enc.spread[enc.spread_class(0)] == 5 and enc.spread[enc.spread_class(60)] == 38


@pytest.mark.parametrize("grid", [DEFAULT.delay, DEFAULT.timing, DEFAULT.length, (3.0, 1.0, 2.0), (1.0, 1.0, 2.0)])
def test_a_ratio_s_class_is_the_nearest_in_log_space_the_first_on_a_tie(grid: tuple[float, ...]) -> None:
    """The classes are found by bisection on a rising grid (a scan otherwise): the same as
    the scan at the grid's values, at the midpoints between them (some exact ties after the
    round trip through exp) and elsewhere."""
    logs = [math.log(value) for value in grid]
    targets = [*logs, *((a + b) / 2 for a, b in pairwise(sorted(logs))), *(k / 37 for k in range(-300, 300))]
    for ratio in map(math.exp, targets):
        target = math.log(ratio)
        scan = min(range(len(grid)), key=lambda i: abs(logs[i] - target))
        assert _nearest_log(ratio, grid) == scan, (grid, ratio)


def test_a_files_rhythm_comes_back_from_its_classes(tmp_path) -> None:
    """Reader → delay classes against the running pulse → onsets rebuilt the way the daemon
    schedules them (each delay × the low median of the IOIs rebuilt so far): the same rhythm."""
    path = write_midi(tmp_path / "rhythm.mid", [[(b, n, p, 0) for b, n, p in RHYTHM]])
    records = read_records(path)
    onsets = [r.onset for r in records]
    iois = [b - a for a, b in pairwise(onsets)]
    rebuilt = iois[:1]  # the first IOI has no pulse before it: it is the unit
    for i in range(1, len(iois)):
        pulse = running_median(iois, i)
        ratio = DEFAULT.delay[DEFAULT.delay_class(iois[i], pulse)]
        rebuilt.append(ratio * median_low(rebuilt[-DEFAULT.history:]))
    assert rebuilt == pytest.approx(iois)


def test_the_pedal_lengthens_what_it_holds(tmp_path) -> None:
    """A key released under the pedal sounds until the pedal comes up, or until struck again."""
    import mido

    mid = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack([
        mido.Message("control_change", control=64, value=127, time=0),
        mido.Message("note_on", note=48, velocity=70, time=0),
        mido.Message("note_off", note=48, time=240),  # released at 0.5 beat, under the pedal
        mido.Message("note_on", note=60, velocity=90, time=240),  # beat 1
        mido.Message("note_off", note=60, time=240),
        mido.Message("note_on", note=60, velocity=50, time=240),  # beat 2: struck again
        mido.Message("note_off", note=60, time=240),
        mido.Message("control_change", control=64, value=0, time=720),  # pedal up at beat 4
    ])
    mid.tracks.append(track)
    path = tmp_path / "pedal.mid"
    mid.save(path)
    notes = sorted(read_notes(path), key=lambda n: (float(n.start_beats), n.pitch))
    assert [(n.pitch, float(n.start_beats), n.sounding_beats) for n in notes] == [
        (48, 0.0, 4.0), (60, 1.0, 1.0), (60, 2.0, 2.0)]
    assert notes[0].duration_s == pytest.approx(0.25), "the key itself was held half a beat"
    assert [r.length for r in read_records(path)] == [4.0, 1.0, 2.0]


def test_a_chords_voicing_comes_back_from_its_classes() -> None:
    enc = DEFAULT
    for pitches in ([48, 64, 67], [43, 59, 62, 65], [36, 48, 55, 64], [50, 53, 57]):
        from mididuet.daemon.music.tokens import chord_token

        token = chord_token(pitches)
        low, high = min(pitches), max(pitches)
        classes = (enc.octave_class(low), enc.bass_class(token, low), enc.spread_class(high - low),
                   enc.doubled_class(len(pitches), token))
        voiced = voice_chord(token, enc.octave[classes[0]], enc.bass[classes[1]], enc.spread[classes[2]],
                             enc.doubled[classes[3]])
        assert voiced[0] == low, (pitches, voiced)
        assert chord_token(voiced) == token
        assert enc.spread_class(voiced[-1] - voiced[0]) == classes[2], (pitches, voiced)
        assert len(voiced) == len(pitches)


def test_features_are_class_plus_one_and_zero_unknown() -> None:
    previous = DEFAULT.previous_length(3, ended=True)
    played = DEFAULT.played("0.4.7", None, None, previous, 6, 48, 67, 3)
    assert len(played) == len(FEATURES)
    assert played[:4] == (0, 0, feature(3), feature(6))
    unknown = DEFAULT.previous_length(None, ended=None)
    octave = feature(DEFAULT.octave_class(60))
    assert DEFAULT.played("C4", 5, 3, unknown, None, 60, 60, 1)[2:] == (0, 0, octave, 1, 1, 1, 0,
                                                                       *[0] * (len(LOUD) + len(KNOWN)))
    version_3 = Encoding(features=(*HEADS, "sounding"))
    assert version_3.played("C4", 5, 3, unknown, None, 60, 60, 1, sounding=4)[2:] == (0, 0, octave, 1, 1, 1, 4)
    version_2 = Encoding(features=HEADS)
    assert version_2.played("C4", 5, 3, unknown, None, 60, 60, 1, sounding=4)[2:] == (0, 0, octave, 1, 1, 1)


def test_the_sounding_feature_is_the_oldest_sounding_token_s_age_in_pulses() -> None:
    assert FEATURES[len(HEADS)] == "sounding" and FEATURES[:len(HEADS)] == HEADS
    assert DEFAULT.sounding_feature(None, 0.5) == DEFAULT.nothing_sounding == DEFAULT.size("length") + 1
    assert DEFAULT.feature_size("sounding") == DEFAULT.nothing_sounding + 1
    assert DEFAULT.sounding_feature(2.0, None) == 0, "no pulse yet: unknown"
    assert DEFAULT.length[DEFAULT.sounding_feature(2.0, 0.5) - 1] == 4.0  # 2 beats at half a beat's pulse
    assert DEFAULT.length[DEFAULT.sounding_feature(100.0, 0.5) - 1] == DEFAULT.length[-1]


def test_the_loud_features_are_the_last_tokens_exact_offsets_from_the_level_after() -> None:
    assert FEATURES[-len(LOUD) - len(KNOWN):-len(KNOWN)] == LOUD and DEFAULT.loud_count == LOUD_TOKENS
    assert DEFAULT.trunk_features == (*HEADS, "sounding")
    assert DEFAULT.feature_size(LOUD[0]) == 2 * LOUD_RANGE + 2  # unknown, then -40..40
    # This token (latest last) first, then each before it; against the level after it.
    loud = DEFAULT.loud_features([50.0, 64.0, 70.0], 64.0)
    assert loud[:3] == (feature(LOUD_RANGE + 6), feature(LOUD_RANGE), feature(LOUD_RANGE - 14))
    assert loud[3:] == (0,) * (LOUD_TOKENS - 3), "no token that far back: unknown"
    assert DEFAULT.loud_features([127.0, 1.0], 64.0)[:2] == (feature(0), feature(2 * LOUD_RANGE)), "clipped"
    assert DEFAULT.loud_features([math.nan, 64.0], 64.0)[:2] == (feature(LOUD_RANGE), 0), "a primer token's"
    assert DEFAULT.loud_features([64.0], None) == (0,) * LOUD_TOKENS, "no level yet"
    assert len(DEFAULT.loud_features(list(range(40, 60)), 50.0)) == LOUD_TOKENS
    assert Encoding(features=(*HEADS, "sounding")).loud_features([64.0], 64.0) == ()


def test_the_known_features_are_the_last_tokens_lengths_or_ages_as_they_stand() -> None:
    assert FEATURES[-len(KNOWN):] == KNOWN and DEFAULT.known_count == KNOWN_TOKENS and DEFAULT.version == 5
    grid = len(DEFAULT.length)
    assert DEFAULT.feature_size(KNOWN[0]) == 2 * grid + 1  # unknown, each length stopped, each age sounding
    # The token just before first: stopped after 2 beats; still sounding after 3; a primer token.
    known = DEFAULT.known_features([(2.0, True), (3.0, False), None], 0.5)
    assert known[0] == feature(DEFAULT.length.index(4.0)), "2 beats at half a beat's pulse: 4 pulses"
    assert known[1] == feature(DEFAULT.length.index(6.0) + grid), "sounding: past the stopped lengths' classes"
    assert known[2:] == (0,) * (KNOWN_TOKENS - 2), "unknown, and no token that far back"
    assert DEFAULT.known_features([(2.0, True)], None) == (0,) * KNOWN_TOKENS, "no pulse yet"
    assert DEFAULT.known_features([(0.0, False)] * 20, 0.5) == (feature(grid),) * KNOWN_TOKENS, "just begun: shortest"
    version_4 = Encoding(features=FEATURES_BY_VERSION[4])
    assert version_4.known_features([(2.0, True)], 0.5) == () and version_4.version == 4
    assert len(version_4.played("C4", None, None, 0, None, 60, 60, 1)) == len(FEATURES) - len(KNOWN)


def test_the_length_feature_says_held_when_the_token_before_still_sounded() -> None:
    assert DEFAULT.previous_length(3, ended=False) == DEFAULT.held == DEFAULT.size("length") + 1
    assert DEFAULT.previous_length(None, ended=True) == 0  # stopped, but no pulse to measure it by
    assert DEFAULT.feature_size("length") == DEFAULT.held + 1
    assert DEFAULT.feature_size("velocity") == DEFAULT.size("velocity") + 1
    assert DEFAULT.timing[DEFAULT.timing_class(1.1, DEFAULT.delay.index(1.0), 1.0)] == 1.07
    assert DEFAULT.timing_class(1.0, None, 1.0) is None


def test_the_metadata_round_trips_and_bad_metadata_is_named() -> None:
    meta = DEFAULT.as_metadata()
    assert Encoding.from_metadata(meta) == DEFAULT
    assert meta["version"] == 5 and meta["features"] == list(FEATURES) and "known_k" in meta["units"]
    version_4 = Encoding(features=FEATURES_BY_VERSION[4])
    assert Encoding.from_metadata(version_4.as_metadata()) == version_4 and "known_k" not in version_4.as_metadata()[
        "units"]
    version_3 = Encoding(features=(*HEADS, "sounding"))
    assert Encoding.from_metadata(version_3.as_metadata()) == version_3
    assert version_3.version == 3 and "loud_k" not in version_3.as_metadata()["units"] and version_3.loud_count == 0
    version_2 = Encoding(features=HEADS).as_metadata()
    assert version_2["version"] == 2 and "sounding" not in version_2["units"]
    assert Encoding.from_metadata(version_2).features == HEADS, "a version-2 bundle reads eight features"
    with pytest.raises(ValueError, match=r"features must be .* \(version 2\)"):
        Encoding.from_metadata({**version_2, "features": list(FEATURES)})
    with pytest.raises(ValueError, match="loud_range must be 40"):
        Encoding.from_metadata({**meta, "loud_range": 30})
    with pytest.raises(ValueError, match="loud_range must be 40"):
        Encoding.from_metadata({key: value for key, value in meta.items() if key != "loud_range"})
    for misplaced in ((*HEADS, *LOUD, "sounding"), (*HEADS, "sounding", *KNOWN, *LOUD),
                      (*HEADS, "sounding", *LOUD[:4], *KNOWN), (*HEADS, "sounding", *LOUD, *KNOWN[:3])):
        with pytest.raises(ValueError, match="the loud features, then the known ones, must come last"):
            Encoding(features=misplaced)
    with pytest.raises(ValueError, match="8 loud features expected, got 2"):
        DEFAULT.played("C4", None, None, 0, None, 60, 60, 1, 0, (1, 2))
    with pytest.raises(ValueError, match="8 known features expected, got 1"):
        DEFAULT.played("C4", None, None, 0, None, 60, 60, 1, 0, (), (1,))
    with pytest.raises(ValueError, match="this mididuet reads 2, 3, 4 and 5"):
        Encoding.from_metadata({**meta, "version": 6})
    with pytest.raises(ValueError, match=r"features must be .* \(version 4\)"):
        Encoding.from_metadata({**meta, "version": 4})
    with pytest.raises(ValueError, match=r"features must be .* \(version 3\)"):
        Encoding.from_metadata({**meta, "version": 3})
    with pytest.raises(ValueError, match="heads must be"):
        Encoding.from_metadata({**meta, "heads": ["tempo"]})
    with pytest.raises(ValueError, match="heads must be"):  # the daemon plays them all
        Encoding.from_metadata({**meta, "heads": ["delay"]})
    with pytest.raises(ValueError, match="history must be a positive integer"):
        Encoding.from_metadata({**meta, "history": 0})
    assert issubclass(BundleError, Exception)
