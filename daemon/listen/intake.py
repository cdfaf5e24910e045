"""The bounded hand-off from rtmidi's thread to the playing loop, and what it drops.

rtmidi calls :meth:`Intake.on_event` for every input event (from JACK's process thread,
with the GIL) with the event's raw bytes, so the call stays small: stamp, classify by
the status byte, maybe count a drop, put. No ``mido.Message`` is built there: the loop
takes ``(t_ns, bytes)`` items from :attr:`Intake.queue` and parses them in its own time
(:mod:`.parse`). Nothing grows without bound:

- Up to :data:`SOFT_LIMIT` waiting messages, everything goes in.
- Above it, the *expendable* messages are dropped: clock, pitch bend, aftertouch,
  polytouch, sysex, active sensing, program changes and every other system message.
  The engine only follows clock (with ``--clock``) and only records the others;
  losing some in an overload costs a little tempo accuracy, never a note.
- Above :data:`HARD_LIMIT`, note-ons and control changes are dropped too. Only
  well-formed ones count as such (3 bytes, data bytes < 128); a malformed event is
  expendable, and the loop's parser drops it anyway.
- *Releases* always go in: the note-off (or velocity-0 note-on) of a key whose note-on
  went in, and the pedal-up of a channel whose pedal-down went in. Dropping one would
  leave the engine believing a key or the pedal is held: a duet phrase would never end,
  and with ``--thru`` a note would hang on the synth. A note-off whose note-on was
  dropped (or never came) is dropped with the rest above the soft limit: the engine
  ignores it anyway. Releases are bounded by the keys that can be down (16 channels x
  128 notes, plus 16 pedals), so the queue holds at most ``HARD_LIMIT + 2064`` items.

An empty sysex (F0 F7, what :class:`..ports.input.SysexCloser` sends into our own input)
carries nothing: it is not queued or counted, only noted in :attr:`Intake.last_ns`.

Counts are kept per type (:attr:`Intake.dropped`) and the highest backlog seen
(:attr:`Intake.peak`); both are written by rtmidi's thread only and read by the loop
(a stale read there is harmless: the numbers only grow). Drops are counted by the type
the status byte names (``other`` for a data byte or an undefined status in first place).
"""

from __future__ import annotations

import queue
import time
from collections.abc import Sequence
from typing import Any

import mido
from mido.messages.specs import SPEC_BY_STATUS, SPEC_BY_TYPE

from ..music.midi import (
    CHANNELS,
    CONTROL_CHANGE,
    END_OF_EXCLUSIVE,
    NOTE_OFF,
    NOTE_ON,
    SUSTAIN,
    SWITCH_ON,
    SYSTEM_EXCLUSIVE,
)

# About what the loop feeds in 2-3 ms: an expendable message waiting behind more than that
# is not worth the delay it adds to the notes behind it.
SOFT_LIMIT = 256
# Notes and controls are dropped only when ~10 ms of work is already waiting: a stalled
# loop, or a flood far beyond any keyboard (docs/reliability.md, the flood).
HARD_LIMIT = 1024
_KEEP = frozenset({NOTE_OFF, NOTE_ON, CONTROL_CHANGE})
OTHER = "other"  # the drop count of a first byte that names no message type
# The type a first byte names, by byte: a lookup instead of parsing on rtmidi's thread.
_TYPE_BY_STATUS = tuple(SPEC_BY_STATUS[b]["type"] if b in SPEC_BY_STATUS else OTHER for b in range(256))


class Intake:
    """A queue of stamped messages with an overload policy. ``put`` is rtmidi's callback."""

    def __init__(self, soft_limit: int = SOFT_LIMIT, hard_limit: int = HARD_LIMIT) -> None:
        if not 0 < soft_limit <= hard_limit:
            raise ValueError(f"limits must satisfy 0 < soft_limit <= hard_limit, got {soft_limit}, {hard_limit}")
        self.queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.soft_limit = soft_limit
        self.hard_limit = hard_limit
        # 1 for each (channel, note) whose note-on went in and whose note-off has not:
        # its note-off is never dropped. A bytearray: no allocation per message.
        self._down = bytearray(CHANNELS * 128)
        self._pedal = bytearray(CHANNELS)
        # Every type is a key from the start: the loop iterates this dict while rtmidi's
        # thread counts, and a key added then would break the iteration.
        self.dropped: dict[str, int] = dict.fromkeys([*SPEC_BY_TYPE, OTHER], 0)
        self.accepted = 0
        self.peak = 0
        self.last_ns = 0  # when the last event came (kept or dropped): input is flowing

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    def dropped_text(self) -> str:
        """The drops by type, most first (``clock 120, pitchwheel 80``), or ``none``."""
        counts = sorted(((n, kind) for kind, n in list(self.dropped.items()) if n), key=lambda c: (-c[0], c[1]))
        return ", ".join(f"{kind} {n}" for n, kind in counts) or "none"

    def on_event(self, event: tuple[list[int], float], _data: object = None) -> None:
        """python-rtmidi's input callback: ``event`` is ``([bytes...], delta_s)``."""
        self.put_bytes(event[0])

    def put(self, msg: mido.Message) -> None:
        """Queue a message as its bytes (for callers holding a ``mido.Message``)."""
        self.put_bytes(msg.bytes())

    def put_bytes(self, data: Sequence[int]) -> None:
        """Stamp one event's bytes now and queue them, or count them as dropped.
        Never blocks or raises."""
        t_ns = self.last_ns = time.monotonic_ns()
        if len(data) == 2 and data[0] == SYSTEM_EXCLUSIVE and data[1] == END_OF_EXCLUSIVE:
            return  # an empty sysex (the sysex closer's, ..ports.input.SysexCloser) carries nothing
        waiting = self.queue.qsize()
        if waiting > self.peak:
            self.peak = waiting
        status = data[0] if data else 0
        high = status & 0xF0
        if high in _KEEP and len(data) == 3 and data[1] < 0x80 and data[2] < 0x80:
            channel, key, value = status & 0x0F, data[1], data[2]
            if self._release(high, channel, key, value) or waiting < self.hard_limit:
                self._mark(high, channel, key, value)
                self.queue.put((t_ns, data))
                self.accepted += 1
                return
        elif waiting < self.soft_limit:
            self.queue.put((t_ns, data))
            self.accepted += 1
            return
        self.dropped[_TYPE_BY_STATUS[status]] += 1

    def wake(self, marker: object) -> None:
        """Put a marker for the loop (signal handlers, a send error); never dropped."""
        self.queue.put(marker)

    def _release(self, high: int, channel: int, key: int, value: int) -> bool:
        """True when the event ends a key or pedal that went in (it must go in too)."""
        if high == CONTROL_CHANGE:
            return key == SUSTAIN and value < SWITCH_ON and bool(self._pedal[channel])
        if high == NOTE_OFF or value == 0:
            return bool(self._down[channel * 128 + key])
        return False

    def _mark(self, high: int, channel: int, key: int, value: int) -> None:
        """Remember which keys and pedals are down among the events that went in."""
        if high == CONTROL_CHANGE:
            if key == SUSTAIN:
                self._pedal[channel] = value >= SWITCH_ON
        else:
            self._down[channel * 128 + key] = high == NOTE_ON and value > 0

    def forget_keys(self) -> None:
        """Forget held keys and pedals (the input port was lost: their releases will not come).

        Called from the loop while rtmidi's thread may run: a key marked down again at the
        same moment only means one more note-off is let through later, which is harmless.
        """
        self._down[:] = bytes(len(self._down))
        self._pedal[:] = bytes(len(self._pedal))
