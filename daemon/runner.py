"""The runner: drive the engine in real time between two MIDI ports, as a service.

Threads:

- rtmidi's input thread runs :meth:`daemon.intake.Intake.on_event` with each event's raw
  bytes, which only stamps ``time.monotonic_ns()`` at the edge and puts ``(t_ns, bytes)``
  on a ``SimpleQueue``; no lock, no allocation beyond the tuple, no parsing, no inference
  (a slow query there would stall the MIDI thread, and the loop waits for the GIL behind
  every call there). The queue is bounded by an overload policy (expendable messages
  first, never a release of a key that went in; see :mod:`daemon.intake`); drops are
  counted, warned about (:mod:`daemon.chores`), and shown in the stats line.
- The loop (the main thread, so that it also receives signals) waits on the queue until
  the engine's next deadline or the next chore, feeds what arrived (at most
  :data:`FEED_BATCH` events between ticks, so a flood cannot starve the answer), parsing
  each into messages (:mod:`daemon.midibytes`: malformed ones dropped, a sysex lump cut up
  again), and ticks the engine. Between notes it does its chores, and with no deadline
  within :data:`IDLE_MARGIN_NS` its idle work (:mod:`daemon.chores`).

The runner is built from two halves besides this loop: :class:`daemon.supervise.PortSupervision`
(the ports, lost and found, the engine's output, systemd's STATUS text) and
:class:`daemon.chores.Chores` (reload, port list, watchdog, stats, recording, drop reports).

Signal handlers only record the signal and put a wake-up marker on the queue
(``SimpleQueue.put`` is reentrant, safe in a handler); the loop acts on it. SIGTERM and
SIGINT stop: release every open note (the engine's ledger), close the recorder, close
the ports, exit 0. SIGHUP reloads (:mod:`daemon.reload`): the new options and model are
loaded and checked first; a refused reload is logged and the old model keeps playing.

The JACK server going away (stopped or crashed) is seen by :class:`daemon.jackwatch.ServerWatch`:
rtmidi's clients cannot be revived in the same process, so the runner releases what it
can, says so, and exits with :data:`EXIT_SERVER_GONE` (3); systemd's
``Restart=on-failure`` starts it again, and it waits for the server's ports.

An unexpected exception releases notes, is logged, and ends the run with a non-zero code.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import sys
import time
from typing import Any

from daemon import ports, reload
from daemon.bundle import load_bundle
from daemon.chores import NS, Chores
from daemon.errors import MididuetError
from daemon.intake import Intake
from daemon.jackwatch import ServerWatch
from daemon.links import PortLink
from daemon.midibytes import Parser
from daemon.run_options import RunOptions
from daemon.supervise import WAKE, PortSupervision

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_SERVER_GONE", "NS", "RunOptions", "Runner", "run"]

log = logging.getLogger("mididuet.runner")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_SERVER_GONE = 3  # the JACK server went away: restart mididuet (systemd does, on failure)
# The loop never sleeps longer than this, so a lost wake-up costs at most this much.
MAX_WAIT_S = 0.5
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# Messages fed between two ticks at most: ~2 ms of feeding, so a deadline waits no longer.
FEED_BATCH = 256
# Disk writes and reports only when the next deadline is at least this far away: a
# rewrite of an hour's recording takes ~1 ms, a slow disk more.
IDLE_MARGIN_NS = 20_000_000
# Nothing is fed in the last 2 ms before a deadline: under load a decision made again
# takes ~1-1.5 ms. A message arriving then is fed right after the note (in duet, a player
# cutting in less than 2 ms before an answer's note hears that note start and stop).
GUARD_NS = 2_000_000
RELEASE_FLUSH_S = 0.05  # a few JACK periods (1.3 ms each at 64 frames, 43 ms at 2048)
SWITCH_INTERVAL_S = 0.0005
# The last stretch before a deadline is waited out awake, not asleep: a sleeper's timer
# fires late (on these VMs, with SCHED_FIFO: 66 µs at p50, 0.28 ms at p99 idle), and an
# idle virtual CPU can take ~1 ms to run a thread woken on it (perf sched, under a flood
# of input); a loop that is awake sees the deadline within µs. 2 ms, not 1, because floods
# went over the 1 ms lateness target less often (docs/reliability.md). The cost is CPU:
# 7.1 -> 9.4 % of a core playing solo at 400 BPM (benchmarks/RESULTS.md). At most
# GUARD_NS: the guard is where it waits (so the sleep before it only runs when SPIN_NS is
# lowered, as the benchmark's asleep baseline does).
SPIN_NS = 2_000_000
# Each turn of the wait is a zero sleep: it gives up the GIL and the CPU for ~30 µs here,
# so rtmidi's input callback gets the GIL about as soon as while the loop sleeps (p99
# 0.9-1.7x that; a bare loop: 3-8x; benchmarks/bench_wait.py), ordinary threads get the
# CPU, and the deadline is still seen 13-18 µs late at p50. Under a flood it cost less
# CPU than os.sched_yield (1.3 µs turns): loop 181 against 199 ms/s, input thread 111
# against 133 ms/s (one run each).


class Runner(PortSupervision, Chores):
    """Owns the ports, the engine and the loop for one ``mididuet run``."""

    def __init__(self, options: RunOptions) -> None:
        self.options = options
        self.intake = Intake()
        self.queue = self.intake.queue  # what the loop waits on
        self.parser = Parser()  # the loop's: input bytes into messages
        self.stop_signal: int | None = None
        self.hangups = 0
        self.reloads = 0  # hangups acted on
        self.engine: Any = None
        self.model: Any = None
        self.recorder: Any = None
        self.stats: Any = None
        self.api: ports.MidiApi | None = None
        self.links: list[PortLink] = []
        self._lister: ports.PortLister | None = None
        self._send_error: OSError | None = None
        self._announced = False
        self._next_look = 0
        self._next_watchdog: int | None = None
        self._next_stats: int | None = None
        self._next_sysex_close: int | None = None
        self._watch: ServerWatch | None = None
        self.server_gone = False  # set on libjack's thread by the ServerWatch
        self._dropped_warned = 0  # drops already reported
        self._next_drop_check = 0
        self._record_failed = False

    # --- signal handlers: record only --------------------------------------------------
    def _on_stop_signal(self, signum: int, _frame: object) -> None:
        self.stop_signal = signum
        self.intake.wake(WAKE)

    def _on_hangup(self, _signum: int, _frame: object) -> None:
        self.hangups += 1
        self.intake.wake(WAKE)

    def _install_signals(self) -> dict[int, Any]:
        previous = {}
        for sig in STOP_SIGNALS:
            previous[sig] = signal.signal(sig, self._on_stop_signal)
        if hasattr(signal, "SIGHUP"):
            previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, self._on_hangup)
        return previous

    # --- setup and teardown ---------------------------------------------------------------
    def open(self) -> None:
        """Load the model, open the ports, build the engine. Raises ``MididuetError``."""
        from daemon.stats import Stats

        opts = self.options
        opts.settings.validate()
        self.api = api = ports.select_api(opts.api)
        self.model = load_bundle(opts.model)
        self.links = [PortLink(api, "output", opts.out_port), PortLink(api, "input", opts.in_port, self._on_message)]
        if any(link.watched for link in self.links):
            self._lister = ports.PortLister(api)
        self.stats = opts.stats if opts.stats is not None else Stats()
        if opts.record_dir is not None:
            from daemon.record import SessionRecorder

            try:
                self.recorder = SessionRecorder(opts.record_dir)
            except OSError as err:
                raise MididuetError(f"--record {opts.record_dir}: cannot create it ({err.strerror or err})") from err
        names = self._names()
        # Output first: messages arriving once the input is open wait in the queue, stamped.
        for link, listed in zip(self.links, (names[1], names[0]) if names else (None, None), strict=True):
            try:
                link.open(listed)
            except ports.PortError as err:
                if not (opts.wait and link.watched):
                    raise
                log.warning("waiting for %s port %r, looking every %g s: %s", link.kind, link.query,
                            opts.retry_s, err)
        # The engine is made once the ports are open; the loop's first act is engine.begin(),
        # so a solo's first note counts from the loop's start, not from here.
        self.engine = reload.new_engine(self.model, opts.settings, self.send, opts.primer, self.recorder,
                                        self.stats)
        if api.name == "jack":
            watch = ServerWatch(self._on_server_gone)
            if watch.start():
                self._watch = watch
            else:
                log.info("cannot watch the JACK server: if it stops, mididuet will not notice")
        if opts.notifier is not None:
            # READY once the model is loaded and the ports are open or being waited for:
            # holding READY back for a keyboard would make systemd time the start out.
            opts.notifier.ready(self.status())
        self._announce_if_ready()

    def set_realtime(self) -> None:
        """Ask for real-time scheduling of the loop thread; without permission, carry on."""
        priority = self.options.rt_priority
        if priority <= 0 or not hasattr(os, "sched_setscheduler"):
            return
        try:
            # pid 0 is the calling thread on Linux: only the loop gets the priority.
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
            log.info("loop runs with SCHED_FIFO priority %d", priority)
        except (PermissionError, OSError) as err:
            log.info("no real-time priority (%s): notes may be late on a busy machine; "
                     "see README 'Troubleshooting' (rtprio limits)", err)

    def close(self) -> None:
        """Release notes, write the recording, close the ports; never raises for a port error."""
        if self.engine is not None:
            self.engine.release_all()  # never raises: the ledger drops what it cannot send
            # rtmidi's JACK output only queues messages until JACK's next cycle: closing the
            # port at once could drop the note-offs just sent and leave notes hanging.
            time.sleep(RELEASE_FLUSH_S)
        if self.recorder is not None:
            try:
                path = self.recorder.close()
                log.info("recorded %s", path)
            except OSError as err:
                log.error("could not write the recording: %s", err)
        for link in reversed(self.links):  # the input first: nothing more comes in
            link.close()
        if self._lister is not None:
            self._lister.close()
            self._lister = None
        if self._watch is not None:
            self._watch.close()
            self._watch = None
        if self.stats is not None and self.options.stats_interval_s is not None:
            print(f"mididuet: stats at exit: {self.stats_line()}", file=sys.stderr, flush=True)

    # --- the loop ---------------------------------------------------------------------
    def loop(self) -> int:
        """Run until a stop signal. Returns the exit code. Blocks."""
        get = self.queue.get
        monotonic_ns = time.monotonic_ns
        self.schedule_chores(monotonic_ns())
        self.engine.begin(monotonic_ns())
        deadline = self.engine.tick(monotonic_ns())
        while self.stop_signal is None and not self.server_gone:
            now = monotonic_ns()
            if deadline is not None and deadline - now <= GUARD_NS:
                # Something is due within the guard: it goes out before anything more is
                # fed. A player token fed now would drop the token decided ahead, and
                # deciding again (~1 ms under load) would make this note late; what
                # arrives meanwhile waits in the queue, stamped, and is fed just after.
                if deadline - now > SPIN_NS:
                    time.sleep((deadline - SPIN_NS - now) / NS)
                while monotonic_ns() < deadline:
                    time.sleep(0)
                deadline = self.engine.tick(monotonic_ns())
                if self.hangups != self.reloads or self._send_error is not None:
                    self._chores(monotonic_ns())
                    deadline = self.engine.tick(monotonic_ns())
                continue
            chore_at = self._chore_time(deadline)
            due = chore_at if deadline is None else min(deadline - GUARD_NS, chore_at)
            timeout = min(max(due - now, 0) / NS, MAX_WAIT_S)
            try:
                item = get(timeout=timeout) if timeout > 0 else get_nowait(self.queue)
            except queue.Empty:
                item = None
            # Feed what has arrived before ticking, so a chord's notes are seen together
            # and a burst does not wait one deadline per message; but no more than a
            # batch, and not into the guard before the next deadline, so a flood that
            # never lets the queue empty cannot hold off a note.
            engine = self.engine
            parse = self.parser.parse
            fed = 0
            while item is not None:
                if item is not WAKE:
                    for msg in parse(item[1]):
                        engine.feed(msg, item[0])
                fed += 1
                if fed >= FEED_BATCH or (deadline is not None and monotonic_ns() >= deadline - GUARD_NS):
                    break
                item = get_nowait(self.queue)
            deadline = engine.tick(monotonic_ns())
            now = monotonic_ns()
            if now >= self._chore_time(deadline) or self.hangups != self.reloads or self._send_error is not None:
                self._chores(now)
                deadline = self.engine.tick(monotonic_ns())
            if deadline is None or deadline - now >= IDLE_MARGIN_NS:
                self._idle(now)
        if self.options.notifier is not None:
            self.options.notifier.stopping()
        if self.stop_signal is None:
            log.error("the JACK server went away: mididuet's JACK clients cannot be reopened in this "
                      "process; releasing what it can and exiting with status %d (systemd restarts it; "
                      "in a terminal, start it again once JACK runs)", EXIT_SERVER_GONE)
            return EXIT_SERVER_GONE
        log.info("stopping on signal %s: releasing notes, closing ports", signal.Signals(self.stop_signal).name)
        return EXIT_OK

    def _chore_time(self, deadline: int | None) -> int:
        """When the chores may run: when due, but never just before a note.

        Listing JACK's ports can wait for the server (10 ms has been seen); a chore that
        falls due within the idle margin before a deadline waits until that note is out.
        """
        chore_at = self._next_chore()
        if deadline is not None and chore_at > deadline - IDLE_MARGIN_NS:
            return max(chore_at, deadline + 1)
        return chore_at

    def run(self) -> int:
        """Open, loop, close. Returns the exit code; raises ``MididuetError`` from setup."""
        previous = self._install_signals()
        try:
            self.open()
            self.set_realtime()
            # rtmidi runs our input callback on JACK's thread, which must take the GIL
            # from the loop (and the loop from it): at CPython's default 5 ms switch
            # interval a flood of input made notes ~3.5 ms late at p99. 0.5 ms bounds
            # that wait; the cost is more frequent switches (negligible here).
            switch_interval = sys.getswitchinterval()
            sys.setswitchinterval(SWITCH_INTERVAL_S)
            try:
                return self.loop()
            except Exception:  # the loop must never leave notes hanging, whatever went wrong
                log.exception("unexpected error; releasing notes and stopping")
                return EXIT_FAILED
            finally:
                sys.setswitchinterval(switch_interval)  # for callers that run us in-process
        finally:
            self.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def get_nowait(q: queue.SimpleQueue[Any]) -> Any:
    """The next item, or None when the queue is empty."""
    try:
        return q.get_nowait()
    except queue.Empty:
        return None


def run(options: RunOptions) -> int:
    """Run the daemon until SIGTERM/SIGINT; returns the exit code. Raises ``MididuetError``."""
    return Runner(options).run()
