"""Expressive answers through real JACK ports: the shipped model's heads decide when each
token comes, how long it sounds and how loud it is; format-1 bundles and ``--rhythm pulse``
keep the steady pulse."""

from __future__ import annotations

import itertools
import statistics
import time

import pytest

from mididuet.daemon.music.expression import Encoding
from mididuet.daemon.play.rhythm import MAX_NOTE_NS
from mididuet.daemon.predict.bundle import ModelRunner, shipped_model_path
from tests.helpers.jack import Monitor, Player, hanging, onset_groups, poll, quiet_for, sounded

pytestmark = pytest.mark.jack

PULSE_S = 0.2
# A phrase as a pianist plays it: mostly on the pulse, with halves, a dotted figure and a
# held bass under the melody; a crescendo to the top and back; legato and staccato notes.
MELODY = [(0, 63), (1, 67), (2, 70), (2.5, 72), (3, 70), (4, 68), (5, 67), (5.75, 65), (6, 63), (7, 62),
          (8, 63), (9, 65), (9.5, 67), (10, 68), (11, 70), (12, 75)]
BASS = [(0, 39), (4, 44), (8, 46), (12, 51)]


def _call() -> list[tuple[float, int, float, int]]:
    notes = []
    for i, (beat, note) in enumerate(MELODY):
        velocity = 55 + 40 * min(i, len(MELODY) - 1 - i) // (len(MELODY) // 2)
        length = (0.3 if i % 4 == 3 else 0.9) * PULSE_S
        notes.append((beat * PULSE_S, note, length, velocity))
    notes += [(beat * PULSE_S, note, 3.5 * PULSE_S, 60) for beat, note in BASS]
    return notes


CALL = _call()
TOKENS = len(MELODY)  # the bass notes join the melody notes they start with


@pytest.fixture(scope="module")
def shipped() -> ModelRunner:
    path = shipped_model_path()
    model = ModelRunner(path)
    assert model.info.expression is not None, f"the shipped model {path} has no expressive heads"
    return model


def _answer(player: Player, monitor: Monitor, tokens: int = TOKENS) -> tuple[list[list], list]:
    player.perform(CALL)
    mark = time.monotonic_ns()
    assert poll(lambda: len(onset_groups(monitor.note_ons(since=mark))) >= tokens, 30), "no full answer"
    assert quiet_for(monitor, 1.0, MAX_NOTE_NS / 1e9 + 5), "the answer went on"
    answer = [(t, m) for t, m in monitor.messages if t >= mark]
    assert not hanging(monitor.messages)
    return onset_groups([(t, m) for t, m in answer if m.type == "note_on" and m.velocity > 0]), sounded(answer)


def test_expressive_answers_vary_when_how_long_and_how_loud(start_daemon, player: Player, monitor: Monitor,
                                                           shipped: ModelRunner) -> None:
    start_daemon("--model", str(shipped_model_path()), "--phrase-gap", "500", "--seed", "2")
    groups, notes = _answer(player, monitor)
    encoding: Encoding = shipped.info.expression
    # The answer's pulse is the running median of the last 16 IOIs, the call's and its own.
    onsets = [group[0][0] for group in groups]
    ratios = [(b - a) / 1e9 / PULSE_S for a, b in itertools.pairwise(onsets)]
    grid_low = encoding.delay[0] * encoding.timing[0]
    grid_high = encoding.delay[-1] * encoding.timing[-1]
    assert all(grid_low * 0.5 <= r <= grid_high * 1.5 for r in ratios), ratios
    assert len({round(r * 8) for r in ratios}) >= 3, f"intervals in eighths of the pulse: {ratios}"
    assert any(abs(r - 1) > 0.2 for r in ratios), f"every interval is the pulse: {ratios}"

    lengths = [length / 1e9 / PULSE_S for _, length, _ in notes]
    assert len({round(x * 8) for x in lengths}) >= 3, f"lengths in eighths of the pulse: {lengths}"
    assert max(length for _, length, _ in notes) <= MAX_NOTE_NS + 50_000_000

    velocities = [velocity for _, _, velocity in notes]
    call_velocities = [velocity for *_, velocity in CALL]
    assert len(set(velocities)) >= 3, velocities
    low, high = min(call_velocities) + encoding.velocity[0], max(call_velocities) + encoding.velocity[-1]
    assert all(low <= v <= high for v in velocities), (velocities, low, high)


def test_velocity_still_fixes_the_loudness(start_daemon, player: Player, monitor: Monitor,
                                           shipped: ModelRunner) -> None:
    start_daemon("--model", str(shipped_model_path()), "--phrase-gap", "500", "--seed", "2", "--velocity", "70")
    groups, notes = _answer(player, monitor)
    assert {velocity for _, _, velocity in notes} == {70}
    onsets = [group[0][0] for group in groups]
    assert len({round((b - a) / 1e9 / PULSE_S * 8) for a, b in itertools.pairwise(onsets)}) >= 3


def _steady(groups: list[list], notes: list) -> None:
    onsets = [group[0][0] for group in groups]
    iois = [b - a for a, b in itertools.pairwise(onsets)]
    pulse = statistics.median(iois)
    assert abs(pulse / 1e9 - PULSE_S) < 0.03, f"pulse {pulse / 1e6:.0f} ms"
    assert all(abs(ioi - pulse) < 0.03e9 for ioi in iois), [ioi / 1e6 for ioi in iois]
    assert all(abs(length - 0.9 * pulse) < 0.03e9 for _, length, _ in notes)
    assert len({velocity for _, _, velocity in notes}) == 1


def test_rhythm_pulse_plays_the_steady_pulse(start_daemon, player: Player, monitor: Monitor,
                                             shipped: ModelRunner) -> None:
    daemon = start_daemon("--model", str(shipped_model_path()), "--phrase-gap", "500", "--seed", "2",
                          "--rhythm", "pulse")
    _steady(*_answer(player, monitor))
    assert not any("no expressive heads" in line for line in daemon.lines)


def test_a_format_1_bundle_plays_the_pulse_and_says_so(start_daemon, player: Player, monitor: Monitor) -> None:
    daemon = start_daemon("--phrase-gap", "500", "--seed", "2")  # the tiny format-1 bundle
    assert any("has no expressive heads" in line and "pulse" in line for line in daemon.lines), daemon.stderr()
    _steady(*_answer(player, monitor))
