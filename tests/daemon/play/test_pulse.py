"""The pulse: a fixed bpm, MIDI clock, or the player, clamped to a musical range."""

from __future__ import annotations

import pytest

from mididuet.daemon.music.units import NS_PER_MS as MS
from mididuet.daemon.music.units import bpm_to_ns
from mididuet.daemon.play.pulse import DEFAULT_BPM, MAX_BPM, MIN_BPM, Pulse


def test_fixed_bpm_wins() -> None:
    assert Pulse(bpm=100).pulse_ns(0, 123 * MS) == 600 * MS


def test_player_pulse_is_clamped_to_a_musical_range() -> None:
    pulse = Pulse()
    assert pulse.pulse_ns(0, None) == bpm_to_ns(DEFAULT_BPM)
    assert pulse.pulse_ns(0, 400 * MS) == 400 * MS
    assert pulse.pulse_ns(0, 50 * MS) == bpm_to_ns(MAX_BPM) == 200 * MS
    assert pulse.pulse_ns(0, 5000 * MS) == bpm_to_ns(MIN_BPM) == 1500 * MS


def test_midi_clock_at_24_ppq_gives_the_quarter_note() -> None:
    pulse = Pulse(follow_clock=True)
    tick = 500 * MS // 24  # 120 BPM
    for i in range(30):
        pulse.clock_tick(i * tick)
    assert pulse.pulse_ns(29 * tick, None) == pytest.approx(500 * MS, rel=1e-3)
    # A clock that stopped more than a second ago is ignored: the player's pulse returns.
    assert pulse.pulse_ns(29 * tick + 2000 * MS, 300 * MS) == 300 * MS


def test_clock_is_ignored_unless_followed() -> None:
    pulse = Pulse()
    for i in range(30):
        pulse.clock_tick(i * MS)
    assert pulse.pulse_ns(30 * MS, 400 * MS) == 400 * MS


def test_a_runaway_midi_clock_is_clamped_like_the_player() -> None:
    pulse = Pulse(follow_clock=True)
    for i in range(30):
        pulse.clock_tick(i * 1_000_000)  # a tick every 1 ms: 2,500 BPM
    assert pulse.pulse_ns(30_000_000, None) == bpm_to_ns(MAX_BPM)
