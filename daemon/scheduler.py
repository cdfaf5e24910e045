"""Play: the pulse, the velocity, chord voicing, and the note ledger.

The pulse is the time from one answered token to the next, chosen in this order:

1. a fixed ``bpm`` (one token per beat);
2. incoming MIDI clock when following it (24 ticks per quarter note; a clock silent for
   more than :data:`CLOCK_TIMEOUT_NS` is ignored);
3. the player: the median time between their recent token onsets, clamped to
   :data:`MIN_BPM`..:data:`MAX_BPM` equivalents (200 ms..1.5 s per token), so a
   hesitant or frantic phrase still gets a playable answer;
4. :data:`DEFAULT_BPM` before the player has given a tempo.

Notes last :data:`NOTE_LENGTH` of a pulse, so each note-off comes before the next
note-on. Every note-on goes through the :class:`NoteLedger`, which keeps it until its
note-off is sent: nothing is ever left hanging.
"""

from __future__ import annotations

import contextlib
import heapq
from collections import deque
from collections.abc import Callable

import mido

from daemon.tokens import HIGHEST_PIANO_KEY, LOWEST_PIANO_KEY, clamp_to_piano, token_pitches

NS_PER_MINUTE = 60_000_000_000
MIN_BPM = 40.0
MAX_BPM = 300.0
DEFAULT_BPM = 120.0
CLOCKS_PER_QUARTER = 24  # MIDI clock: 24 pulses per quarter note
CLOCK_TIMEOUT_NS = 1_000_000_000
NOTE_LENGTH = 0.9  # fraction of a pulse a note sounds
DEFAULT_VELOCITY = 80
ALL_NOTES_OFF = 123


def bpm_to_ns(bpm: float) -> int:
    return int(NS_PER_MINUTE / bpm)


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


def clamp_pulse(pulse_ns: int) -> int:
    """A pulse kept within MIN_BPM..MAX_BPM."""
    return min(max(pulse_ns, bpm_to_ns(MAX_BPM)), bpm_to_ns(MIN_BPM))


def voice(token: str, register: int) -> list[int]:
    """The notes to play for a token: chords near ``register``, single notes in their octave."""
    notes = token_pitches(token, register)
    # token_pitches already keeps to 21..108; clamp again so the promise holds by construction.
    return [n if LOWEST_PIANO_KEY <= n <= HIGHEST_PIANO_KEY else clamp_to_piano(n) for n in notes]


def velocity_for(fixed: int | None, player_median: int | None) -> int:
    if fixed is not None:
        return fixed
    return DEFAULT_VELOCITY if player_median is None else min(max(player_median, 1), 127)


class NoteLedger:
    """Every note-on sent, until its note-off is sent.

    A note is entered *before* its note-on is handed to ``send``: if ``send`` fails, the
    ledger holds a note that may not sound, and the worst outcome is a spare note-off.
    A note is removed *before* its note-off is sent, so a failing port cannot make the
    ledger retry forever. ``send`` errors (``OSError``) propagate, except in
    :meth:`release_all`, which must always finish.
    """

    def __init__(self, send: Callable[[mido.Message], None]) -> None:
        self._send = send
        # (channel, note) -> (owner, generation); the generation tells a scheduled note-off
        # whether the note it was meant for is still the one sounding.
        self._open: dict[tuple[int, int], tuple[str, int]] = {}
        self._offs: list[tuple[int, int, int, int]] = []  # heap of (due_ns, channel, note, generation)
        self._generation = 0
        self.channels_used: set[int] = set()

    def __len__(self) -> int:
        return len(self._open)

    def is_open(self, channel: int, note: int) -> bool:
        return (channel, note) in self._open

    def open_notes(self) -> list[tuple[int, int]]:
        return sorted(self._open)

    @property
    def next_due(self) -> int | None:
        return self._offs[0][0] if self._offs else None

    def note_on(self, channel: int, note: int, velocity: int, owner: str,
                off_at_ns: int | None = None) -> None:
        """Send a note-on (re-striking the note if it is already sounding) and track it."""
        # mido's own checks cost ~5 µs a message, at the moment a note is due; these three
        # ranges are all a note-on needs, checked here for a fraction of that.
        if not (0 <= channel <= 15 and 0 <= note <= 127 and 0 <= velocity <= 127):
            raise ValueError(f"note_on out of range: channel {channel} note {note} velocity {velocity}")
        key = (channel, note)
        if key in self._open:
            self.note_off(channel, note)
        self._generation += 1
        self._open[key] = (owner, self._generation)
        self.channels_used.add(channel)
        if off_at_ns is not None:
            heapq.heappush(self._offs, (off_at_ns, channel, note, self._generation))
        self._send(mido.Message("note_on", skip_checks=True, channel=channel, note=note, velocity=velocity))

    def note_off(self, channel: int, note: int, owner: str | None = None) -> bool:
        """Send the note-off of a tracked note (of ``owner``, if given); False if nothing was sent."""
        entry = self._open.get((channel, note))
        if entry is None or (owner is not None and entry[0] != owner):
            return False
        del self._open[(channel, note)]
        self._send(mido.Message("note_off", skip_checks=True, channel=channel, note=note))  # checked on the way in
        return True

    def release_due(self, now_ns: int) -> None:
        """Send every scheduled note-off due at or before ``now_ns``."""
        offs = self._offs
        while offs and offs[0][0] <= now_ns:
            _, channel, note, generation = heapq.heappop(offs)
            entry = self._open.get((channel, note))
            if entry is not None and entry[1] == generation:
                self.note_off(channel, note)

    def release_owner(self, owner: str) -> None:
        """End every note of one owner now (an interrupted answer, not the thru notes)."""
        for channel, note in [key for key, entry in self._open.items() if entry[0] == owner]:
            self.note_off(channel, note)

    def release_all(self) -> None:
        """Note-off for every open note, then CC 123 on every channel used.

        Never raises for a failing port: each entry is dropped whether or not its
        note-off could be sent. Safe to call any number of times.
        """
        self._offs.clear()
        while self._open:
            (channel, note), _ = self._open.popitem()
            # A failing port: drop the entry anyway, nothing more can be done for this note.
            with contextlib.suppress(OSError):
                self._send(mido.Message("note_off", channel=channel, note=note))
        for channel in sorted(self.channels_used):
            with contextlib.suppress(OSError):
                self._send(mido.Message("control_change", channel=channel, control=ALL_NOTES_OFF, value=0))
