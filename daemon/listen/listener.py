"""Listen: turn the player's timestamped notes into tokens, and remember how they play.

Note-ons whose onsets fall within ``chord_window`` of the first one of a group become one
token (:func:`..music.tokens.chord_token`). The group closes when a note-on arrives after
the window, or when :meth:`Listener.flush` is called at or after its deadline, so a chord
is known at most one chord window after its first note.

The listener also keeps what the engine follows: held keys, the sustain pedal, the
time of the last key or pedal change, and short histories of onsets, velocities and
pitches (fixed-length deques: nothing grows while playing). And it times how long each
token sounds, the pedal applied as the trainer's reader applies it (a key released under
the pedal sounds until the pedal comes up, or until it is struck again):
:meth:`Listener.take_ended` hands over the tokens whose notes have all stopped.
"""

from __future__ import annotations

from collections import deque
from collections.abc import KeysView
from dataclasses import dataclass
from itertools import pairwise
from statistics import median

from ..music.midi import SWITCH_ON
from ..music.tokens import chord_token

HISTORY = 16  # recent onsets / notes the tempo, velocity and register follow
MAX_SOUNDING_TOKENS = 64  # tokens timed at once; more only with lost note-offs, and the oldest go
# Gaps longer than this are pauses between phrases, not the player's pulse.
MAX_PULSE_IOI_NS = 1_500_000_000


@dataclass(frozen=True, slots=True)
class PlayedToken:
    """One token the player played: its notes started within one chord window."""

    token: str
    onset_ns: int
    pitches: tuple[int, ...]
    velocity: int = 0  # the loudest note's


class Listener:
    """The player's side of the conversation. Not thread-safe: one caller (the engine)."""

    def __init__(self, chord_window_ns: int) -> None:
        self.chord_window_ns = chord_window_ns
        self.sustain = False
        self.last_activity_ns: int | None = None
        self._group: list[int] = []
        self._group_onset = 0
        self._group_velocity = 0
        # Sounding notes by pitch -> their token's onset (keys down, and keys released under
        # the pedal); per token onset: [notes still sounding, when the last one stopped].
        self._down: dict[int, int] = {}
        self._pedalled: dict[int, int] = {}
        self._timing: dict[int, list[int]] = {}
        self._ended: list[tuple[int, int]] = []
        self._onsets: deque[int] = deque(maxlen=HISTORY + 1)
        self._velocities: deque[int] = deque(maxlen=HISTORY)
        self._pitches: deque[int] = deque(maxlen=HISTORY)

    @property
    def held(self) -> KeysView[int]:
        """The keys down now."""
        return self._down.keys()

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
            self._group_onset, self._group_velocity = t_ns, 0
        self._group.append(note)
        self._group_velocity = max(self._group_velocity, velocity)
        self._start_sounding(note, t_ns)
        self._velocities.append(velocity)
        self._pitches.append(note)
        self.last_activity_ns = t_ns
        return done

    def note_off(self, note: int, t_ns: int) -> None:
        """A key went up (a note-off for a key never pressed is harmless)."""
        self.last_activity_ns = t_ns
        onset = self._down.pop(note, None)
        if onset is not None:
            if self.sustain:
                self._pedalled[note] = onset
            else:
                self._stop_sounding(onset, t_ns)

    def pedal(self, value: int, t_ns: int) -> None:
        self.sustain = value >= SWITCH_ON
        self.last_activity_ns = t_ns
        if not self.sustain:
            for onset in self._pedalled.values():
                self._stop_sounding(onset, t_ns)
            self._pedalled.clear()

    def take_ended(self) -> list[tuple[int, int]]:
        """``(onset_ns, length_ns)`` of the tokens whose notes have all stopped since the
        last call (only tokens already handed over: not the chord still being gathered)."""
        if not self._ended:
            return []
        ready = [e for e in self._ended if not (self._group and e[0] == self._group_onset)]
        self._ended = [e for e in self._ended if self._group and e[0] == self._group_onset]
        return ready

    def _start_sounding(self, note: int, t_ns: int) -> None:
        for sounding in (self._down, self._pedalled):  # struck again: the old one stops now
            if note in sounding:
                self._stop_sounding(sounding.pop(note), t_ns)
        self._down[note] = self._group_onset
        if self._group_onset not in self._timing:
            # Its keys had all come up within the chord window (a quick re-strike): not ended.
            self._ended = [e for e in self._ended if e[0] != self._group_onset]
            if len(self._timing) >= MAX_SOUNDING_TOKENS:
                del self._timing[next(iter(self._timing))]
            self._timing[self._group_onset] = [0, t_ns]
        self._timing[self._group_onset][0] += 1

    def _stop_sounding(self, onset: int, t_ns: int) -> None:
        timing = self._timing.get(onset)
        if timing is None:
            return
        timing[0] -= 1
        timing[1] = max(timing[1], t_ns)
        if timing[0] <= 0:
            del self._timing[onset]
            self._ended.append((onset, timing[1] - onset))

    def flush(self, now_ns: int) -> PlayedToken | None:
        """Close the chord being gathered if its window has passed at ``now_ns``."""
        deadline = self.pending_deadline
        if deadline is not None and now_ns >= deadline:
            return self._close()
        return None

    def close_pending(self) -> PlayedToken | None:
        """Close the chord being gathered now, whatever its window (a panic), or None."""
        return self._close() if self._group else None

    def _close(self) -> PlayedToken:
        pitches = tuple(sorted(set(self._group)))
        self._group.clear()
        self._onsets.append(self._group_onset)
        return PlayedToken(chord_token(pitches), self._group_onset, pitches, self._group_velocity)

    @property
    def last_onset_ns(self) -> int | None:
        """The onset of the player's last token, or None."""
        return self._onsets[-1] if self._onsets else None

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
        self.sustain = False
        self._down.clear()
        self._pedalled.clear()
        self._timing.clear()
        self._ended.clear()
