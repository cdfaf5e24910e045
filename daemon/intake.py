"""The bounded hand-off from rtmidi's thread to the playing loop, and what it drops.

rtmidi calls :meth:`Intake.put` for every message (from JACK's process thread, with
the GIL), so the call stays small: stamp, classify, maybe count a drop, put. The loop
takes ``(t_ns, msg)`` items from :attr:`Intake.queue`. Nothing grows without bound:

- Up to :data:`SOFT_LIMIT` waiting messages, everything goes in.
- Above it, the *expendable* messages are dropped: clock, pitch bend, aftertouch,
  polytouch, sysex, active sensing, program changes and every other system message.
  The engine only follows clock (with ``--follow-clock``) and only records the others;
  losing some in an overload costs a little tempo accuracy, never a note.
- Above :data:`HARD_LIMIT`, note-ons and control changes are dropped too.
- *Releases* always go in: the note-off (or velocity-0 note-on) of a key whose note-on
  went in, and the pedal-up of a channel whose pedal-down went in. Dropping one would
  leave the engine believing a key or the pedal is held: a duet phrase would never end,
  and with ``--thru`` a note would hang on the synth. A note-off whose note-on was
  dropped (or never came) is dropped with the rest above the soft limit: the engine
  ignores it anyway. Releases are bounded by the keys that can be down (16 channels x
  128 notes, plus 16 pedals), so the queue holds at most ``HARD_LIMIT + 2064`` items.

Counts are kept per type (:attr:`Intake.dropped`) and the highest backlog seen
(:attr:`Intake.peak`); both are written by rtmidi's thread only and read by the loop
(a stale read there is harmless: the numbers only grow).
"""

from __future__ import annotations

import queue
import time
from typing import Any

import mido
from mido.messages.specs import SPEC_BY_TYPE

# ~256 messages take the loop ~2-3 ms to feed: an expendable message waiting behind more
# than that is not worth the delay it adds to the notes behind it.
SOFT_LIMIT = 256
# Notes and controls are dropped only when ~10 ms of work is already waiting: a stalled
# loop or a flood far beyond any keyboard (2,000 messages/s is ~3 % of the loop's capacity).
HARD_LIMIT = 1024
SUSTAIN_CC = 64
PEDAL_DOWN = 64  # the listener's threshold: 64..127 is down
_KEEP_TYPES = frozenset({"note_on", "note_off", "control_change"})


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
        self._down = bytearray(16 * 128)
        self._pedal = bytearray(16)
        # Every type is a key from the start: the loop iterates this dict while rtmidi's
        # thread counts, and a key added then would break the iteration.
        self.dropped: dict[str, int] = dict.fromkeys(SPEC_BY_TYPE, 0)
        self.accepted = 0
        self.peak = 0

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    def dropped_text(self) -> str:
        """The drops by type, most first (``clock 120, pitchwheel 80``), or ``none``."""
        counts = sorted(((n, kind) for kind, n in list(self.dropped.items()) if n), key=lambda c: (-c[0], c[1]))
        return ", ".join(f"{kind} {n}" for n, kind in counts) or "none"

    def put(self, msg: mido.Message) -> None:
        """Stamp ``msg`` now and queue it, or count it as dropped. Never blocks or raises."""
        t_ns = time.monotonic_ns()
        waiting = self.queue.qsize()
        if waiting > self.peak:
            self.peak = waiting
        kind = msg.type
        if kind in _KEEP_TYPES:
            if self._release(msg) or waiting < self.hard_limit:
                self._mark(msg)
                self.queue.put((t_ns, msg))
                self.accepted += 1
                return
        elif waiting < self.soft_limit:
            self.queue.put((t_ns, msg))
            self.accepted += 1
            return
        self.dropped[kind] += 1

    def wake(self, marker: object) -> None:
        """Put a marker for the loop (signal handlers, a send error); never dropped."""
        self.queue.put(marker)

    def _release(self, msg: mido.Message) -> bool:
        """True when ``msg`` ends a key or pedal that went in (it must go in too)."""
        if msg.type == "control_change":
            return msg.control == SUSTAIN_CC and msg.value < PEDAL_DOWN and bool(self._pedal[msg.channel])
        if msg.type == "note_off" or msg.velocity == 0:
            return bool(self._down[msg.channel * 128 + msg.note])
        return False

    def _mark(self, msg: mido.Message) -> None:
        """Remember which keys and pedals are down among the messages that went in."""
        if msg.type == "control_change":
            if msg.control == SUSTAIN_CC:
                self._pedal[msg.channel] = msg.value >= PEDAL_DOWN
        else:
            self._down[msg.channel * 128 + msg.note] = msg.type == "note_on" and msg.velocity > 0

    def forget_keys(self) -> None:
        """Forget held keys and pedals (the input port was lost: their releases will not come).

        Called from the loop while rtmidi's thread may run: a key marked down again at the
        same moment only means one more note-off is let through later, which is harmless.
        """
        self._down[:] = bytes(len(self._down))
        self._pedal[:] = bytes(len(self._pedal))
