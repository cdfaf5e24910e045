"""The loop's work between notes: chores when due, idle work when no deadline is near.

- :class:`Chores`: timers, each with its action: the port list every ``retry_s``,
  ``WATCHDOG=1`` at half systemd's watchdog period, the stats line every
  ``stats_interval_s``, and in JACK, after :data:`SYSEX_CLOSE_S` with no input, an
  empty sysex into mididuet's own input (:class:`..ports.input.SysexCloser`). The
  runner builds them (:meth:`..runner.Runner.chores`) and runs them between notes.
- :class:`IdleWork`: what may take a millisecond, done only with no deadline within the
  loop's idle margin: the recording's periodic rewrite (a disk error is logged and the
  music goes on) and the overload report (at most every :data:`DROP_WARN_S`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from ..listen.intake import Intake
from ..music.units import NS_PER_S, s_to_ns
from .record import WRITE_EVERY_NS, SessionRecorder

log = logging.getLogger("mididuet.runner")  # the runner's logger: log filters select it by name

DROP_WARN_S = 10.0  # at most one overload warning this often
# The longest a sysex cut short can hold the input: short enough that a musician's next
# phrase is not lost, long enough that the closer costs nothing (a 2-byte message at
# most 20 times a second, and none while the player plays).
SYSEX_CLOSE_S = 0.05


@dataclass
class Chore:
    """An action repeated every ``interval_s``; ``first_s``: its first run after the start."""

    name: str
    interval_s: float
    action: Callable[[int], None]
    first_s: float | None = None
    due_ns: int = 0


class Chores:
    """A set of chores, each run when due. The loop's thread only."""

    def __init__(self, chores: list[Chore]) -> None:
        self.chores = {chore.name: chore for chore in chores}

    def start(self, now: int) -> None:
        """(Re)start every timer from ``now``."""
        for chore in self.chores.values():
            first = chore.interval_s if chore.first_s is None else chore.first_s
            chore.due_ns = now + s_to_ns(first)

    def next_due(self) -> int | None:
        return min((chore.due_ns for chore in self.chores.values()), default=None)

    def run_due(self, now: int, also: str | None = None) -> None:
        """Run every chore due at ``now`` (and ``also``, by name, whether due or not)."""
        for chore in self.chores.values():
            if now >= chore.due_ns or chore.name == also:
                chore.due_ns = now + s_to_ns(chore.interval_s)
                chore.action(now)


def sysex_closer(intake: Intake, close_sysex: Callable[[], None]) -> Chore:
    """The chore that ends a sysex RtMidi may hold open, when no event came for a while
    (any event that came proves nothing is held)."""
    def close(now: int) -> None:
        if now - intake.last_ns >= SYSEX_CLOSE_S * NS_PER_S:
            close_sysex()
    return Chore("sysex", SYSEX_CLOSE_S, close, first_s=0.0)


class IdleWork:
    """The recording's periodic rewrite and the overload report. The loop's thread only."""

    def __init__(self, intake: Intake, recorder: SessionRecorder | None) -> None:
        self.intake = intake
        self.recorder = recorder
        self._record_failed = False
        self._dropped_warned = 0  # drops already reported
        self._next_drop_check = 0

    def run(self, now: int) -> None:
        if self.recorder is not None:
            self._write_recording(now)
        if now >= self._next_drop_check:
            self._next_drop_check = now + s_to_ns(DROP_WARN_S)
            dropped = self.intake.dropped_total
            if dropped > self._dropped_warned:
                log.warning("input overloaded: dropped %d messages (%d in all: %s); notes and their "
                            "note-offs are kept first", dropped - self._dropped_warned, dropped,
                            self.intake.dropped_text())
                self._dropped_warned = dropped

    def _write_recording(self, now: int) -> None:
        assert self.recorder is not None
        try:
            if self.recorder.write_if_due(now):
                if self._record_failed:
                    log.info("recording written again to %s", self.recorder.path)
                self._record_failed = False
        except OSError as err:
            # A full disk must not stop the music; the next try is an interval later.
            if not self._record_failed:
                log.error("could not write the recording (still playing, trying again every %g s): %s",
                          WRITE_EVERY_NS / NS_PER_S, err)
            self._record_failed = True
