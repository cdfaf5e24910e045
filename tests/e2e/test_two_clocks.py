"""One engine, two clocks: the demo's simulated duet is the duet a real run plays through JACK.

With the pulse rhythm, note for note. The expressive rhythm reads the player's timing
itself (a few milliseconds of JACK's jitter can move an interval to the next rubato class,
and the model's prediction with it), so there the same seed gives the same kind of answer,
not the same notes; tests/daemon/offline checks that generate and demo play the heads.
"""

from __future__ import annotations

import time

import pytest

from mididuet.daemon.engine.settings import EngineSettings
from mididuet.daemon.offline.demo import demo_phrase
from mididuet.daemon.offline.generate import perform
from mididuet.daemon.predict.bundle import load_bundle
from tests.helpers.jack import Monitor, Player, hanging, onset_groups, poll

pytestmark = pytest.mark.jack

SPEED = 0.5  # play the demo phrase twice as fast: same tokens, half the wait
ANSWER = 8


def test_simulated_and_real_time_duets_give_the_same_answer(start_daemon, player: Player, monitor: Monitor) -> None:
    events = [(int(t * SPEED), msg) for t, msg in demo_phrase()]
    settings = EngineSettings(seed=1, bpm=240.0, phrase_gap_ms=300.0, rhythm="pulse")
    simulated = perform(load_bundle(), settings, events, ANSWER)
    expected = [msg.note for _, msg in simulated.answer if msg.type == "note_on" and msg.velocity > 0]
    assert len(expected) >= ANSWER

    start_daemon("--seed", "1", "--bpm", "240", "--phrase-gap", "300", "--answer-tokens", str(ANSWER),
                 "--rhythm", "pulse", model=None)
    player.perform(events)
    assert poll(lambda: len(onset_groups(monitor.note_ons())) >= ANSWER
                and len(monitor.note_offs()) >= len(expected), 10)
    time.sleep(0.4)  # room for anything extra, which would be a bug
    played = [msg.note for _, msg in monitor.note_ons()]
    assert played == expected
    assert not hanging(monitor.messages)
