"""Jam, solo, interruption and chord gathering, through real JACK ports."""

from __future__ import annotations

import itertools
import statistics
import time

import mido
import pytest

from tests.helpers.jack import Monitor, Player, hanging, onset_groups, poll, quiet_for

pytestmark = pytest.mark.jack

PULSE_400_BPM_NS = 150_000_000


def test_jam_plays_along_at_the_pulse_while_the_player_plays(start_daemon, player: Player,
                                                             monitor: Monitor) -> None:
    start_daemon("--mode", "jam", "--bpm", "400", "--seed", "1")
    first = time.monotonic_ns()
    player.play([60, 62, 64, 65, 67, 69, 71, 72], step=0.1)
    last = time.monotonic_ns()
    ons = monitor.note_ons()
    # It does not wait for the phrase to end: notes arrive while the player is playing.
    assert ons and first < ons[0][0] < last
    assert poll(lambda: len(onset_groups(monitor.note_ons())) >= 10, 5)
    onsets = [group[0][0] for group in onset_groups(monitor.note_ons())]
    pulse = statistics.median(b - a for a, b in itertools.pairwise(onsets))
    assert abs(pulse - PULSE_400_BPM_NS) < 15_000_000, f"median pulse {pulse / 1e6:.1f} ms"
    # Left alone it stops after a few idle pulses, with every note released.
    assert quiet_for(monitor, 0.5, 8)
    assert not hanging(monitor.messages)


def test_solo_plays_on_its_own(start_daemon, monitor: Monitor) -> None:
    start_daemon("--mode", "solo", "--bpm", "400", "--seed", "1")
    assert poll(lambda: len(onset_groups(monitor.note_ons())) >= 8, 5), "solo needs no player"
    onsets = [group[0][0] for group in onset_groups(monitor.note_ons())]
    pulse = statistics.median(b - a for a, b in itertools.pairwise(onsets))
    assert abs(pulse - PULSE_400_BPM_NS) < 15_000_000


def test_a_new_note_cuts_the_answer_short_and_releases_its_notes(start_daemon, player: Player,
                                                                  monitor: Monitor) -> None:
    # 60 BPM: each answer note would sound 0.9 s; the cut must end it far sooner.
    start_daemon("--bpm", "60", "--answer-tokens", "20", "--phrase-gap", "1500")
    player.play([60, 62, 64])
    assert poll(lambda: len(onset_groups(monitor.note_ons())) >= 2, 6)
    time.sleep(0.2)  # mid-note
    assert hanging(monitor.messages), "an answer note is sounding"
    cut = time.monotonic_ns()
    player.send(mido.Message("note_on", note=48, velocity=70))
    assert poll(lambda: not hanging(monitor.messages), 1), "the sounding answer notes were released"
    released = monitor.note_offs(since=cut)[-1][0]
    assert released - cut < 100_000_000, f"released after {(released - cut) / 1e6:.0f} ms"
    time.sleep(1.0)
    assert not monitor.note_ons(since=cut), "the answer stopped (no next token within a beat)"
    player.send(mido.Message("note_off", note=48, velocity=0))


def test_notes_within_the_chord_window_make_one_token(start_daemon, player: Player, monitor: Monitor) -> None:
    # A duet answer is as long as the call in tokens: a chord (notes 5 ms apart) is a
    # call of one token; the same notes 120 ms apart, three tokens.
    daemon = start_daemon("--phrase-gap", "200", "--bpm", "400", "--seed", "4", "--log-level", "debug")
    player.chord([60, 64, 67], spread=0.005)
    assert poll(lambda: monitor.note_ons(), 3)
    assert quiet_for(monitor, 0.4, 3)
    chord_answer = len(daemon.played_tokens())
    mark = time.monotonic_ns()
    player.play([60, 64, 67], step=0.12)
    assert poll(lambda: len(onset_groups(monitor.note_ons(since=mark))) >= 3, 3)
    assert quiet_for(monitor, 0.4, 3)
    melody_answer = len(daemon.played_tokens()) - chord_answer
    assert (chord_answer, melody_answer) == (1, 3)
