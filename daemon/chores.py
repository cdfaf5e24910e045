"""The runner's work between notes: chores when due, idle work when no deadline is near.

:class:`Chores` is the half of :class:`daemon.runner.Runner` that the loop calls between
ticks:

- *Chores*, each when due: a SIGHUP's reload (:mod:`daemon.reload`); the port list every
  ``retry_s`` (:meth:`daemon.supervise.PortSupervision.look_at_ports`); ``WATCHDOG=1`` at
  half systemd's watchdog period; the stats line every ``stats_interval_s``; in JACK,
  after :data:`SYSEX_CLOSE_S` with no input, an empty sysex into our own input, which
  ends a sysex RtMidi may be holding open (:class:`daemon.ports.SysexCloser`).
- *Idle work*, only with no deadline within the loop's idle margin, because it may take a
  millisecond: the recording's periodic rewrite
  (:meth:`daemon.record.SessionRecorder.write_if_due`; a disk error is logged and the
  music goes on) and the overload report (drops warned about at most every
  :data:`DROP_WARN_S`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from daemon import reload
from daemon.record import WRITE_EVERY_NS

if TYPE_CHECKING:
    from daemon.intake import Intake
    from daemon.ports import MidiApi
    from daemon.run_options import RunOptions

log = logging.getLogger("mididuet.runner")  # the runner's logger: log filters select it by name

NS = 1_000_000_000
DROP_WARN_S = 10.0  # at most one overload warning this often
# The longest a sysex cut short can hold the input: short enough that a musician's next
# phrase is not lost, long enough that the closer costs nothing (a 2-byte message at
# most 20 times a second, and none while the player plays).
SYSEX_CLOSE_S = 0.05


class Chores:
    """Timers and idle work for the runner; the runner's ``__init__`` sets every attribute."""

    options: RunOptions
    api: MidiApi | None
    intake: Intake
    engine: Any
    recorder: Any
    hangups: int
    reloads: int
    _send_error: OSError | None
    _next_look: int
    _next_watchdog: int | None
    _next_stats: int | None
    _next_sysex_close: int | None
    _dropped_warned: int
    _next_drop_check: int
    _record_failed: bool

    # Provided by daemon.supervise.PortSupervision.
    look_at_ports: Callable[[], None]
    close_sysex: Callable[[], None]
    status: Callable[[], str]
    stats_line: Callable[[], str]

    def _chores(self, now: int) -> None:
        """Work between notes: reload, ports, watchdog, stats. Each only when due."""
        opts = self.options
        if self.hangups != self.reloads:
            self.reloads = self.hangups
            reload.reload(self)
            opts = self.options
        if self._send_error is not None or now >= self._next_look:
            self._next_look = now + int(opts.retry_s * NS)
            self.look_at_ports()
        if self._next_watchdog is not None and now >= self._next_watchdog:
            opts.notifier.watchdog()
            self._next_watchdog = now + int(opts.notifier.watchdog_interval_s * NS)
        if self._next_stats is not None and now >= self._next_stats:
            summary = self.stats_line()
            print(f"mididuet: stats: {summary}", file=sys.stderr, flush=True)
            if opts.notifier is not None:
                opts.notifier.status(f"{self.status()}; {summary}")
            self._next_stats = None if opts.stats_interval_s is None else now + int(opts.stats_interval_s * NS)
        if self._next_sysex_close is not None and now >= self._next_sysex_close:
            self._next_sysex_close = now + int(SYSEX_CLOSE_S * NS)
            if now - self.intake.last_ns >= SYSEX_CLOSE_S * NS:  # an event came: nothing is held
                self.close_sysex()

    def _next_chore(self) -> int:
        due = [self._next_look, self._next_watchdog, self._next_stats, self._next_sysex_close]
        return min(t for t in due if t is not None)

    def schedule_chores(self, now: int) -> None:
        """(Re)start the chores' timers from ``now`` (at start and after a reload)."""
        opts = self.options
        self._next_look = now + int(opts.retry_s * NS)
        interval = opts.notifier.watchdog_interval_s if opts.notifier is not None else None
        self._next_watchdog = None if interval is None else now + int(interval * NS)
        self._next_stats = None if opts.stats_interval_s is None else now + int(opts.stats_interval_s * NS)
        # Only JACK's input has a closer (RawInput); elsewhere the timer would wake for nothing.
        self._next_sysex_close = now if self.api is not None and self.api.name == "jack" else None

    def _idle(self, now: int) -> None:
        """Work that may take a millisecond, done only with no deadline near: the
        recording's periodic rewrite and the overload report."""
        if self.recorder is not None:
            try:
                if self.recorder.write_if_due(now):
                    if self._record_failed:
                        log.info("recording written again to %s", self.recorder.path)
                    self._record_failed = False
            except OSError as err:
                # A full disk must not stop the music; the next try is an interval later.
                if not self._record_failed:
                    log.error("could not write the recording (still playing, trying again every %g s): %s",
                              WRITE_EVERY_NS / NS, err)
                self._record_failed = True
        if now >= self._next_drop_check:
            self._next_drop_check = now + int(DROP_WARN_S * NS)
            dropped = self.intake.dropped_total
            if dropped > self._dropped_warned:
                log.warning("input overloaded: dropped %d messages (%d in all: %s); notes and their "
                            "note-offs are kept first", dropped - self._dropped_warned, dropped,
                            self.intake.dropped_text())
                self._dropped_warned = dropped
