"""The note ledger: every note-on sent is kept until its note-off is sent, so nothing is
ever left hanging."""

from __future__ import annotations

import contextlib
import heapq
from collections.abc import Callable

import mido

from ..music.midi import ALL_NOTES_OFF, CHANNELS, MAX_DATA


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
        # mido's own checks are slow at the moment a note is due; these three ranges are
        # all a note-on needs (benchmarks/RESULTS.md).
        if not (0 <= channel < CHANNELS and 0 <= note <= MAX_DATA and 0 <= velocity <= MAX_DATA):
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

    def reschedule(self, channel: int, note: int, off_at_ns: int, owner: str) -> bool:
        """Move the scheduled note-off of ``owner``'s sounding note to ``off_at_ns`` (a
        legato note held on); False, and nothing changed, when that note no longer sounds."""
        entry = self._open.get((channel, note))
        if entry is None or entry[0] != owner:
            return False
        # A new generation: the note-off scheduled before no longer matches the note.
        self._generation += 1
        self._open[(channel, note)] = (owner, self._generation)
        heapq.heappush(self._offs, (off_at_ns, channel, note, self._generation))
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

    def silence(self, channel: int) -> None:
        """CC 123 on ``channel``, whatever the ledger holds: what a run that died before its
        note-offs left sounding there (a crash, SIGKILL) ends when the next one connects.
        Never raises for a failing port."""
        with contextlib.suppress(OSError):
            self._send(mido.Message("control_change", channel=channel, control=ALL_NOTES_OFF, value=0))

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
