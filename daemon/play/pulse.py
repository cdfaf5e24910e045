"""The pulse: the time from one answered token to the next, chosen in this order:

1. a fixed ``bpm`` (one token per beat);
2. incoming MIDI clock when following it (24 ticks per quarter note; a clock silent for
   more than :data:`CLOCK_TIMEOUT_NS` is ignored);
3. the player: the median time between their recent token onsets, clamped to
   :data:`MIN_BPM`..:data:`MAX_BPM` equivalents (200 ms..1.5 s per token), so a
   hesitant or frantic phrase still gets a playable answer;
4. :data:`DEFAULT_BPM` before the player has given a tempo.
"""

from __future__ import annotations

from collections import deque

from ..music.midi import CLOCKS_PER_QUARTER
from ..music.units import NS_PER_S, bpm_to_ns

MIN_BPM = 40.0
MAX_BPM = 300.0
DEFAULT_BPM = 120.0
CLOCK_TIMEOUT_NS = NS_PER_S
NOTE_LENGTH = 0.9  # fraction of a pulse a note sounds with the pulse rhythm: its note-off comes first


class Pulse:
    """Chooses the pulse (ns per token) from a fixed bpm, MIDI clock, or the player."""

    def __init__(self, bpm: float | None = None, follow_clock: bool = False) -> None:
        self.bpm = bpm
        self.follow_clock = follow_clock
        self._clock_ticks: deque[int] = deque(maxlen=CLOCKS_PER_QUARTER + 1)

    def clock_tick(self, t_ns: int) -> None:
        """One MIDI clock message arrived at ``t_ns``."""
        self._clock_ticks.append(t_ns)

    def clock_ns(self, now_ns: int) -> int | None:
        """The quarter-note length the clock gives, or None if it is absent or stale."""
        ticks = self._clock_ticks
        if len(ticks) < 2 or now_ns - ticks[-1] > CLOCK_TIMEOUT_NS:
            return None
        per_tick = (ticks[-1] - ticks[0]) / (len(ticks) - 1)
        return int(per_tick * CLOCKS_PER_QUARTER)

    def pulse_ns(self, now_ns: int, player_ioi_ns: int | None) -> int:
        if self.bpm is not None:
            return bpm_to_ns(self.bpm)
        if self.follow_clock:
            from_clock = self.clock_ns(now_ns)
            if from_clock:
                return clamp_pulse(from_clock)  # a runaway clock must not fire 40 tokens a second
        if player_ioi_ns is None:
            return bpm_to_ns(DEFAULT_BPM)
        return clamp_pulse(player_ioi_ns)

    def source(self, now_ns: int, player_ioi_ns: int | None) -> str:
        """Where the pulse comes from now, in words: ``bpm``, ``clock``, ``player`` or ``default``."""
        if self.bpm is not None:
            return "bpm"
        if self.follow_clock and self.clock_ns(now_ns):
            return "clock"
        return "default" if player_ioi_ns is None else "player"


def clamp_pulse(pulse_ns: int) -> int:
    """A pulse kept within MIN_BPM..MAX_BPM."""
    return min(max(pulse_ns, bpm_to_ns(MAX_BPM)), bpm_to_ns(MIN_BPM))
