"""What the player's control changes mean: a CC's value turned into a temperature or a mode.

Which CC numbers are mididuet's is in the settings (``cc_temperature``, ``cc_mode``,
``cc_mute``, ``cc_panic``); a mute is on at 64..127 (:data:`..music.midi.SWITCH_ON`) and
a panic takes any value.
"""

from __future__ import annotations

from ..music.midi import MAX_DATA

CC_TEMPERATURE_RANGE = (0.1, 2.0)
CC_MEMORY_RANGE = (0.0, 1.0)  # the memory's own confidence still keeps a share for the model
CC_MODE_BOUNDS = (43, 86)  # values below the first: duet; below the second: jam; else solo


def temperature_for_cc(value: int) -> float:
    low, high = CC_TEMPERATURE_RANGE
    return low + (high - low) * value / MAX_DATA


def memory_for_cc(value: int) -> float:
    low, high = CC_MEMORY_RANGE
    return low + (high - low) * value / MAX_DATA


def mode_for_cc(value: int) -> str:
    if value < CC_MODE_BOUNDS[0]:
        return "duet"
    return "jam" if value < CC_MODE_BOUNDS[1] else "solo"
