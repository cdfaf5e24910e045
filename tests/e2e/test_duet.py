"""Duet through real JACK ports: a phrase in, an answer out after the gap."""

from __future__ import annotations

import time

import pytest

from mididuet.daemon.music.tokens import HIGHEST_PIANO_KEY, LOWEST_PIANO_KEY
from tests.helpers.jack import Monitor, Player, hanging, onset_groups, poll

pytestmark = pytest.mark.jack

FAST = ("--phrase-gap", "150", "--bpm", "400", "--seed", "1")


def test_duet_answers_after_the_gap(start_daemon, player: Player, monitor: Monitor) -> None:
    start_daemon(*FAST, "--channel", "3")
    player.play([60, 62, 64, 65, 67, 69])
    phrase_end = time.monotonic_ns()
    # Six tokens in, about six out; the last note-off ends the answer.
    assert poll(lambda: len(monitor.note_offs()) >= 6 and len(onset_groups(monitor.note_ons())) >= 6, 5)
    time.sleep(0.3)  # anything more would be a too-long answer
    ons = monitor.note_ons()
    first = ons[0][0]
    assert first - phrase_end >= 100_000_000, "the answer must wait for the phrase gap"
    assert len(onset_groups(ons)) == 6
    assert all(LOWEST_PIANO_KEY <= m.note <= HIGHEST_PIANO_KEY for _, m in ons)
    assert {m.channel for _, m in monitor.of_type("note_on", "note_off")} == {2}  # channel 3, 0-based
    assert not hanging(monitor.messages)

