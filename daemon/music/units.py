"""Time units. Every time in mididuet is an ``int`` of nanoseconds on the monotonic clock
(``time.monotonic_ns``), so deadlines compare exactly and nothing drifts."""

from __future__ import annotations

NS_PER_US = 1_000
NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000
NS_PER_MINUTE = 60 * NS_PER_S


def ms_to_ns(ms: float) -> int:
    return int(ms * NS_PER_MS)


def s_to_ns(seconds: float) -> int:
    return int(seconds * NS_PER_S)


def bpm_to_ns(bpm: float) -> int:
    """The length of one beat at ``bpm`` beats per minute."""
    return int(NS_PER_MINUTE / bpm)
