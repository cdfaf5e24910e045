"""Expressive answers through real JACK ports: the shipped model's heads decide when each
token comes, how long it sounds and how loud it is; format-1 bundles and ``--rhythm pulse``
keep the steady pulse.

The call is a phrase of a piece the shipped model never trained on (its own held-out
split), played as the file plays it: its notes, velocities, overlaps and pedal. What comes
back is measured as ``mididuet-train answers`` measures it (the daemon's listener over the
notes that arrived).
"""

from __future__ import annotations

import itertools
import statistics
import time
from pathlib import Path

import pytest

from mididuet.daemon.music.units import NS_PER_S
from mididuet.daemon.play.pulse import NOTE_LENGTH
from mididuet.daemon.play.rhythm import MAX_NOTE_NS
from mididuet.daemon.predict.bundle import ModelRunner, shipped_model_path
from mididuet.training.answers import Excerpt, Phrase, measure, phrases
from tests.helpers.jack import DaemonProcess, Monitor, Player, hanging, poll, quiet_for

pytestmark = pytest.mark.jack

CHOPIN = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "piano-midi" / "midis" / "Chopin"
# At debug level the daemon logs each answer's length and each token it plays. The heads are
# drawn untempered (rhythm temperature 1): the default 0.7 plays steadier by design, and
# through JACK (whose timing moves the draws) its answer to this call kept two intervals in
# some runs, which says nothing about whether the heads vary the rhythm.
FLAGS = ("--model", str(shipped_model_path()), "--phrase-gap", "600", "--seed", "2", "--log-level", "debug",
         "--rhythm-temperature", "1.0")


@pytest.fixture(scope="module")
def shipped() -> ModelRunner:
    model = ModelRunner(shipped_model_path())
    assert model.info.expression is not None, "the shipped model has no expressive heads"
    return model


def pulse_of(excerpt: Excerpt) -> float:
    return statistics.median_low(b - a for a, b in itertools.pairwise(excerpt.onsets))


@pytest.fixture(scope="module")
def call(shipped: ModelRunner) -> Phrase:
    """The first held-out phrase (pieces in name order) whose own rhythm varies (a steady
    call may fairly get a steady answer), at a pulse of 0.1-0.25 s (a few seconds long)."""
    for name in sorted(shipped.info.training["val_pieces"]):
        if not (CHOPIN / name).is_file():
            pytest.fail(f"the Chopin corpus is missing at {CHOPIN}; tests need ../shared/data")
        for phrase in phrases(CHOPIN / name):
            pulse = pulse_of(phrase.call)
            ratios = {round((b - a) / pulse * 4) for a, b in itertools.pairwise(phrase.call.onsets)}
            if 0.1 <= pulse <= 0.25 and len(ratios) >= 3:
                return phrase
    pytest.fail("no held-out phrase with a varied rhythm")


def answer(daemon: DaemonProcess, player: Player, monitor: Monitor, call: Phrase) -> Excerpt:
    """The daemon's answer to ``call`` in full: as many tokens as it logs the answer has
    (the call's tokens as its listener heard them; measured onsets can merge two)."""
    player.perform(call.call_events)
    mark = time.monotonic_ns()

    def answered() -> bool:
        lengths = daemon.answer_lengths()
        return bool(lengths) and len(daemon.played_tokens()) >= lengths[0]

    assert poll(answered, 30), f"no full answer:\n{daemon.stderr}"
    assert poll(lambda: not hanging(monitor.messages), MAX_NOTE_NS / NS_PER_S + 2), "a note was left hanging"
    assert quiet_for(monitor, 1.0, 10)
    return measure([(t, m) for t, m in monitor.messages if t >= mark])


def test_the_answer_varies_when_how_long_and_how_loud_within_the_corpus_s_ranges(
        start_daemon, player: Player, monitor: Monitor, shipped: ModelRunner, call: Phrase) -> None:
    heard = answer(start_daemon(*FLAGS), player, monitor, call)
    encoding = shipped.info.expression
    assert encoding is not None
    pulse = pulse_of(call.call)
    ratios = [(b - a) / pulse for a, b in itertools.pairwise(heard.onsets)]
    # Onsets: on the grid × the rubato, in the unit of the pulse (which moves with the answer).
    low, high = encoding.delay[0] * encoding.timing[0], encoding.delay[-1] * encoding.timing[-1]
    assert all(low / 2 <= r <= high * 2 for r in ratios), ratios
    assert len({round(r * 8) for r in ratios}) >= 3, f"intervals in eighths of the pulse: {ratios}"
    lengths = [x / pulse for x in heard.lengths]
    assert len({round(x * 8) for x in lengths}) >= 3, f"lengths in eighths of the pulse: {lengths}"
    assert max(heard.lengths) <= MAX_NOTE_NS / NS_PER_S + 0.05
    assert len(set(heard.velocities)) >= 3, heard.velocities
    # The level follows the answer too (a running median), so allow two offsets' drift.
    loudness = (min(call.call.velocities) + 2 * encoding.velocity[0],
                max(call.call.velocities) + 2 * encoding.velocity[-1])
    assert all(loudness[0] <= v <= loudness[1] for v in heard.velocities), (heard.velocities, loudness)
    assert max(heard.notes) >= 2, "chords are voiced from their classes: not a chord in the answer"


def test_velocity_still_fixes_the_loudness(start_daemon, player: Player, monitor: Monitor, call: Phrase) -> None:
    daemon = start_daemon(*FLAGS, "--velocity", "70")
    assert set(answer(daemon, player, monitor, call).velocities) == {70}


def steady(heard: Excerpt) -> None:
    """One token per pulse, each 0.9 of it long, at one velocity: the pulse rhythm."""
    iois = [b - a for a, b in itertools.pairwise(heard.onsets)]
    pulse = statistics.median(iois)
    assert all(abs(ioi - pulse) < 0.02 for ioi in iois), iois
    assert all(abs(length - NOTE_LENGTH * pulse) < 0.02 for length in heard.lengths), heard.lengths
    assert len(set(heard.velocities)) == 1, heard.velocities


def test_rhythm_pulse_plays_the_steady_pulse(start_daemon, player: Player, monitor: Monitor, call: Phrase) -> None:
    daemon = start_daemon(*FLAGS, "--rhythm", "pulse")
    steady(answer(daemon, player, monitor, call))
    assert not any("no expressive heads" in line for line in daemon.lines)


def test_a_format_1_bundle_plays_the_pulse_and_says_so(start_daemon, player: Player, monitor: Monitor,
                                                       call: Phrase) -> None:
    tokens = str(len(call.call.onsets))  # the tiny bundle knows few of the call's tokens
    daemon = start_daemon("--phrase-gap", "600", "--seed", "2", "--answer-tokens", tokens, "--log-level", "debug")
    assert any("has no expressive heads" in line and "pulse" in line for line in daemon.lines), daemon.stderr
    steady(answer(daemon, player, monitor, call))
