"""Listen: turn the player's timestamped notes into tokens, and remember how they play.

Note-ons whose onsets fall within ``chord_window`` of the first one of a group become one
token (:func:`..music.tokens.chord_token`). The group closes when a note-on arrives after
the window, or when :meth:`Listener.flush` is called at or after its deadline, so a chord
is known at most one chord window after its first note.

The listener also keeps what the engine follows: held keys, the sustain pedal, the
time of the last key or pedal change, and short histories of onsets, velocities and
pitches (fixed-length deques: nothing grows while playing).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from itertools import pairwise
from statistics import median

from ..music.midi import SWITCH_ON
from ..music.tokens import chord_token

HISTORY = 16  # recent onsets / notes the tempo, velocity and register follow
# Gaps longer than this are pauses between phrases, not the player's pulse.
MAX_PULSE_IOI_NS = 1_500_000_000


@dataclass(frozen=True, slots=True)
class PlayedToken:
    """One token the player played: its notes started within one chord window."""

    token: str
    onset_ns: int
    pitches: tuple[int, ...]


class Listener:
    """The player's side of the conversation. Not thread-safe: one caller (the engine)."""

    def __init__(self, chord_window_ns: int) -> None:
        self.chord_window_ns = chord_window_ns
        self.held: set[int] = set()
        self.sustain = False
        self.last_activity_ns: int | None = None
        self._group: list[int] = []
        self._group_onset = 0
        self._onsets: deque[int] = deque(maxlen=HISTORY + 1)
        self._velocities: deque[int] = deque(maxlen=HISTORY)
        self._pitches: deque[int] = deque(maxlen=HISTORY)

    @property
    def pending_deadline(self) -> int | None:
        """When the chord being gathered closes, or None when none is open."""
        return self._group_onset + self.chord_window_ns if self._group else None

    def busy(self) -> bool:
        """True while a key or the pedal is down, or a chord is still being gathered."""
        return bool(self.held or self.sustain or self._group)

    def note_on(self, note: int, velocity: int, t_ns: int) -> PlayedToken | None:
        """A key went down; returns the previous token if this note starts a new one."""
        done = None
        if self._group and t_ns > self._group_onset + self.chord_window_ns:
            done = self._close()
        if not self._group:
            self._group_onset = t_ns
        self._group.append(note)
        self.held.add(note)
        self._velocities.append(velocity)
        self._pitches.append(note)
        self.last_activity_ns = t_ns
        return done

    def note_off(self, note: int, t_ns: int) -> None:
        """A key went up (a note-off for a key never pressed is harmless)."""
        self.held.discard(note)
        self.last_activity_ns = t_ns

    def pedal(self, value: int, t_ns: int) -> None:
        self.sustain = value >= SWITCH_ON
        self.last_activity_ns = t_ns

    def flush(self, now_ns: int) -> PlayedToken | None:
        """Close the chord being gathered if its window has passed at ``now_ns``."""
        deadline = self.pending_deadline
        if deadline is not None and now_ns >= deadline:
            return self._close()
        return None

    def _close(self) -> PlayedToken:
        pitches = tuple(sorted(set(self._group)))
        self._group.clear()
        self._onsets.append(self._group_onset)
        return PlayedToken(chord_token(pitches), self._group_onset, pitches)

    def median_ioi_ns(self) -> int | None:
        """Median time between the player's recent token onsets, pauses left out."""
        gaps = [b - a for a, b in pairwise(self._onsets) if 0 < b - a <= MAX_PULSE_IOI_NS]
        return int(median(gaps)) if gaps else None

    def median_velocity(self) -> int | None:
        return int(median(self._velocities)) if self._velocities else None

    def register(self) -> int | None:
        """The middle of where the player's hand has been (median recent pitch)."""
        return int(median(self._pitches)) if self._pitches else None

    def reset_phrase(self) -> None:
        """Forget key state after a panic; the histories stay (they describe the player)."""
        self.held.clear()
        self.sustain = False
