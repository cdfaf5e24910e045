"""MIDI's numbers: python-rtmidi's names (``rtmidi.midiconstants``) where it has them, and
the few it lacks. Status bytes are given with channel 0 (the high nibble)."""

from __future__ import annotations

from rtmidi.midiconstants import (
    ALL_NOTES_OFF,
    CONTROL_CHANGE,
    END_OF_EXCLUSIVE,
    NOTE_OFF,
    NOTE_ON,
    SUSTAIN,
    SYSTEM_EXCLUSIVE,
    TIMING_CLOCK,
)

__all__ = [
    "ALL_NOTES_OFF", "CHANNELS", "CLOCKS_PER_QUARTER", "CONTROL_CHANGE", "DRUM_CHANNEL", "END_OF_EXCLUSIVE",
    "FIRST_REALTIME", "FIRST_STATUS", "HIGHEST_CONTROLLER", "MAX_DATA", "NOTE_OFF", "NOTE_ON", "SUSTAIN",
    "SWITCH_ON", "SYSTEM_EXCLUSIVE", "TIMING_CLOCK",
]

CHANNELS = 16
MAX_DATA = 127  # a data byte: note, velocity, controller value
SWITCH_ON = 64  # a switch controller (the sustain pedal, mididuet's mute) is on at 64..127
HIGHEST_CONTROLLER = 119  # 120..127 are channel mode messages (all notes off among them)
DRUM_CHANNEL = 9  # channel 10, 0-based: General MIDI percussion
CLOCKS_PER_QUARTER = 24  # MIDI clock
FIRST_STATUS = NOTE_OFF  # bytes from 0x80 up are status bytes, below are data
FIRST_REALTIME = TIMING_CLOCK  # 0xF8..0xFF may come between the bytes of any message, sysex included
