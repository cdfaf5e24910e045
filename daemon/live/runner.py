"""The runner: drive the engine in real time between two MIDI ports, as a service.

Threads:

- rtmidi's input thread runs :meth:`..listen.intake.Intake.on_event` with each event's
  raw bytes, which only stamps ``time.monotonic_ns()`` and puts ``(t_ns, bytes)`` on a
  ``SimpleQueue``: no lock, no parsing, no inference (a slow call there would stall the
  MIDI thread, and the loop waits for the GIL behind every call there). The queue is
  bounded by an overload policy (:mod:`..listen.intake`).
- The loop (the main thread, so that it also receives signals) waits on the queue until
  the engine's next deadline or the next chore, feeds what arrived (at most
  :data:`FEED_BATCH` events between ticks, so a flood cannot starve the answer), parsing
  each into messages (:mod:`..listen.parse`), and ticks the engine. Between notes it
  runs its chores, and with no deadline within :data:`IDLE_MARGIN_NS` its idle work
  (:mod:`.chores`).
- libjack's thread calls the :class:`..ports.jackwatch.ServerWatch` when the JACK server
  goes away; it only sets a flag and wakes the loop.
- The control socket's thread (:mod:`.control.server`) serves ``mididuet watch``: the
  loop only appends events to its hub's deques; a client's request wakes the loop like a
  signal and is applied between notes.

The runner is built from parts that own their state: the :class:`.supervisor.PortSupervisor`
(the two ports, lost and found), :class:`.chores.Chores` and :class:`.chores.IdleWork`,
the engine, and the recorder. A SIGHUP's reload is prepared by :func:`.reload.prepare`
and applied here.

Signal handlers only record the signal and put a wake-up marker on the queue
(``SimpleQueue.put`` is reentrant, safe in a handler); the loop acts on it. SIGTERM and
SIGINT stop: release every open note, close the recorder, close the ports, exit 0.

The JACK server going away: rtmidi's clients cannot be revived in the same process, so
the runner releases what it can, says so, and exits with :data:`EXIT_SERVER_GONE` (3);
systemd's ``Restart=on-failure`` starts it again, and it waits for the server's ports.

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

from ..engine.engine import Engine
from ..engine.observe import Observer
from ..engine.stats import Stats
from ..errors import MididuetError
from ..listen.intake import Intake
from ..listen.parse import Parser
from ..music.units import NS_PER_S
from ..ports.api import select_api
from ..ports.jackwatch import ServerWatch
from ..ports.listing import PortLister
from ..predict.bundle import ModelRunner, load_bundle
from . import reload
from .chores import Chore, Chores, IdleWork, sysex_closer
from .control.hub import STATUS_EVERY_S
from .control.server import ControlServer, open_server
from .options import RunHooks, RunOptions
from .record import Recording, SessionRecorder
from .supervisor import PortChange, PortSupervisor

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_SERVER_GONE", "RunHooks", "RunOptions", "Runner", "run"]

log = logging.getLogger("mididuet.runner")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_SERVER_GONE = 3  # the JACK server went away: restart mididuet (systemd does, on failure)
WAKE = object()  # put on the queue for the loop: "look at the flags now"
# The loop never sleeps longer than this, so a lost wake-up costs at most this much.
MAX_WAIT_S = 0.5
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# Messages fed between two ticks at most: ~2 ms of feeding, so a deadline waits no longer.
FEED_BATCH = 256
# Disk writes, reports and chores only when the next deadline is at least this far away:
# listing JACK's ports can wait for the server, a rewrite of an hour's recording ~1 ms.
IDLE_MARGIN_NS = 20_000_000
# Nothing is fed in the last 2 ms before a deadline: a player token fed then would drop
# the token decided ahead, and deciding again would make the note late. What arrives
# meanwhile waits in the queue, stamped, and is fed right after the note.
GUARD_NS = 2_000_000
# After the last note-offs, a few JACK periods before the output closes: rtmidi's JACK
# output only queues until the next cycle (1.3 ms at 64 frames, 43 ms at 2048).
RELEASE_FLUSH_S = 0.05
# rtmidi's input callback must take the GIL from the loop: CPython's default 5 ms switch
# interval made notes late under a flood of input; 0.5 ms bounds that wait.
SWITCH_INTERVAL_S = 0.0005
# The last stretch before a deadline is waited out awake in zero sleeps, not asleep: a
# sleeping thread's timer fires late, an awake loop sees the deadline within µs, and each
# zero sleep still lets rtmidi's callback have the GIL (benchmarks/bench_wait.py). At most
# GUARD_NS: the guard is where it waits, so the sleep before it only runs when SPIN_NS is
# lowered, as the benchmark's asleep baseline does. Figures: benchmarks/RESULTS.md.
SPIN_NS = 2_000_000


class Runner:
    """Owns the ports, the engine and the loop for one ``mididuet run``."""

    def __init__(self, options: RunOptions, hooks: RunHooks | None = None) -> None:
        self.options = options
        self.hooks = hooks or RunHooks()
        self.intake = Intake()
        self.queue = self.intake.queue  # what the loop waits on
        self.parser = Parser()  # the loop's: input bytes into messages
        self.stats: Stats = self.hooks.stats if self.hooks.stats is not None else Stats()
        self.stop_signal: int | None = None
        self.hangups = 0
        self.reloads = 0  # hangups acted on
        self.server_gone = False  # set on libjack's thread by the ServerWatch
        self.engine: Engine | None = None
        self.model: ModelRunner | None = None
        self.recorder: SessionRecorder | None = None
        self.supervisor: PortSupervisor | None = None
        self.idle = IdleWork(self.intake, None)
        self.chores = Chores([])
        self._announced = False
        self._watch: ServerWatch | None = None
        self.control: ControlServer | None = None

    # --- the threads' callbacks: record only --------------------------------------------
    def _on_message(self, event: tuple[list[int], float], _data: object) -> None:
        """python-rtmidi's input callback: raw bytes, stamped and queued (or dropped)."""
        self.intake.on_event(event)

    def _on_server_gone(self) -> None:
        self.server_gone = True
        self.intake.wake(WAKE)

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
        opts = self.options
        opts.settings.validate()
        api = select_api(opts.api)
        self.model = load_bundle(opts.model)
        primer = opts.primer_tokens()
        if opts.record_dir is not None:
            try:
                self.recorder = SessionRecorder(opts.record_dir)
            except OSError as err:
                raise MididuetError(f"--record {opts.record_dir}: cannot create it ({err.strerror or err})") from err
        self.idle = IdleWork(self.intake, self.recorder)
        # Before the loop takes its real-time priority: the socket's thread must not inherit it.
        self.control = open_server(opts.control, lambda: self.intake.wake(WAKE))
        # Named ports can come and go and are looked for again; mididuet's virtual ones cannot.
        lister = PortLister(api) if opts.in_port is not None or opts.out_port is not None else None
        self.supervisor = PortSupervisor(api, opts.in_port, opts.out_port, self._on_message,
                                         lambda: self.intake.wake(WAKE), opts.retry_s, lister)
        self.supervisor.open(opts.wait)
        # The loop's first act is engine.begin(), so a solo's first note counts from the
        # loop's start, not from here.
        self.engine = self.new_engine(self.model, opts, primer)
        if self.supervisor.out_link.playing:
            self.engine.silence_output()
        if api.name == "jack":
            watch = ServerWatch(self._on_server_gone)
            if watch.start():
                self._watch = watch
                log.info("watching the JACK server through %s", watch.describe())
            else:
                log.info("cannot watch the JACK server: if it stops, mididuet will not notice")
        if self.hooks.notifier is not None:
            # READY once the model is loaded and the ports are open or being waited for:
            # holding READY back for a keyboard would make systemd time the start out.
            self.hooks.notifier.ready(self.status())
        self._announce_if_ready()

    def new_engine(self, model: ModelRunner, options: RunOptions, primer: list[str] | None) -> Engine:
        """An engine starting now, sending to the output, recorded and measured."""
        assert self.supervisor is not None
        observers: list[Observer] = []
        if self.recorder is not None:
            observers.append(Recording(self.recorder))
        if self.control is not None:
            observers.append(self.control.hub)
        if logging.getLogger("mididuet").isEnabledFor(logging.DEBUG):
            observers.append(TokenLogger())  # a call per token only when asked
        return Engine(model, options.settings, self.supervisor.send, time.monotonic_ns(), primer=primer,
                      stats=self.stats, observers=observers)

    def build_chores(self) -> Chores:
        """The chores of this run's options (again after a reload)."""
        assert self.supervisor is not None
        chores = [Chore("ports", self.options.retry_s, lambda _now: self.look_at_ports())]
        notifier = self.hooks.notifier
        if notifier is not None and notifier.watchdog_interval_s is not None:
            chores.append(Chore("watchdog", notifier.watchdog_interval_s, lambda _now: notifier.watchdog()))
        if self.options.stats_interval_s is not None:
            chores.append(Chore("stats", self.options.stats_interval_s, lambda _now: self.report_stats()))
        if self.control is not None:
            hub = self.control.hub
            chores.append(Chore("control", STATUS_EVERY_S, lambda _now: hub.tick(self)))
        if self.supervisor.api.name == "jack":  # only JACK's input has a sysex closer
            chores.append(sysex_closer(self.intake, self.supervisor.close_sysex))
        return Chores(chores)

    def set_realtime(self) -> None:
        """Ask for real-time scheduling of the loop thread; without permission, carry on."""
        priority = self.options.rt_priority
        if priority <= 0 or not hasattr(os, "sched_setscheduler"):
            return
        try:
            # pid 0 is the calling thread on Linux: only the loop gets the priority.
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
            log.info("loop runs with SCHED_FIFO priority %d", priority)
            if self.control is not None:
                self.control.set_realtime()
        except (PermissionError, OSError) as err:
            log.info("no real-time priority (%s): notes may be late on a busy machine; "
                     "see README 'Troubleshooting' (rtprio limits)", err)

    def close(self) -> None:
        """Release notes, write the recording, close the ports; never raises for a port error."""
        if self.engine is not None:
            self.engine.release_all()  # never raises: the ledger drops what it cannot send
            time.sleep(RELEASE_FLUSH_S)
        if self.control is not None:
            self.control.close()
        if self.recorder is not None:
            try:
                path = self.recorder.close()
                log.info("recorded %s", path)
            except OSError as err:
                log.error("could not write the recording: %s", err)
        if self.supervisor is not None:
            self.supervisor.close()
        if self._watch is not None:
            self._watch.close()
            self._watch = None
        if self.options.stats_interval_s is not None:
            print(f"mididuet: stats at exit: {self.stats_line()}", file=sys.stderr, flush=True)

    # --- what the loop does between notes -----------------------------------------------
    def look_at_ports(self) -> None:
        """The ports chore: lost and found ports, and what follows from them."""
        assert self.supervisor is not None and self.engine is not None
        engine = self.engine
        changes = self.supervisor.look(engine.release_all)
        if changes:
            self.apply_port_changes(changes)

    def apply_port_changes(self, changes: list[PortChange]) -> None:
        assert self.engine is not None
        for change in changes:
            if change.event != "lost" and change.link.kind == "output":
                self.engine.silence_output()
            if change.event == "lost" and change.link.kind == "input":
                # Keys held when the keyboard went cannot be released now: forget them, or
                # a duet phrase would never end.
                self.engine.listener.reset_phrase()
                self.intake.forget_keys()
        if self.control is not None:
            self.control.hub.ports_changed(self)
        self.notify_status()
        self._announce_if_ready()

    def report_stats(self) -> None:
        summary = self.stats_line()
        print(f"mididuet: stats: {summary}", file=sys.stderr, flush=True)
        if self.hooks.notifier is not None:
            self.hooks.notifier.status(f"{self.status()}; {summary}")

    def apply_reload(self) -> bool:
        """SIGHUP: switch to the re-read options and model; True when switched, False
        when refused (logged, the old engine keeps playing)."""
        assert self.engine is not None and self.model is not None
        try:
            new = reload.prepare(self.options, self.hooks.reload)
        except (MididuetError, ValueError) as err:
            log.error("reload refused, still playing %s: %s", self.model.path.name, err)
            self.notify_status()
            return False
        old_engine, old_mode = self.engine, self.options.settings.mode
        old_engine.release_all()
        self.options, self.model = new.options, new.model
        self.engine = self.new_engine(new.model, new.options, new.primer)
        reload.carry_over(old_engine, self.engine, old_mode)
        logging.getLogger().setLevel(new.options.log_level.upper())
        self.chores = self.build_chores()
        self.chores.start(time.monotonic_ns())
        log.info("reloaded: model %s (%d tokens), mode %s", new.model.path.name, new.model.info.size,
                 self.engine.mode)
        self.notify_status()
        self.engine.begin(time.monotonic_ns())  # last: a solo's first token counts from here
        return True

    # --- what it says ---------------------------------------------------------------------
    def status(self) -> str:
        """One line for systemd's STATUS (``systemctl --user status mididuet``)."""
        assert self.supervisor is not None and self.engine is not None and self.model is not None
        muted = " (muted)" if self.engine.mute else ""
        return f"{self.supervisor.describe()}; mode {self.engine.mode}{muted}; model {self.model.path.name}"

    def notify_status(self) -> None:
        if self.hooks.notifier is not None:
            self.hooks.notifier.status(self.status())

    def stats_line(self) -> str:
        """The engine's summary and the input's: messages taken, dropped, highest backlog."""
        intake = self.intake
        return (f"{self.stats.summary()} | input {intake.accepted} dropped {intake.dropped_total} "
                f"({intake.dropped_text()}) max waiting {intake.peak} malformed {self.parser.malformed}")

    def _announce_if_ready(self) -> None:
        supervisor = self.supervisor
        if self._announced or supervisor is None or not supervisor.playing:
            return
        self._announced = True
        assert self.model is not None and self.engine is not None
        line = (f"ready: in {supervisor.in_link.name!r}, out {supervisor.out_link.name!r}, "
                f"api {supervisor.api.name}, model {self.model.path.name} ({self.model.info.size} tokens), "
                f"mode {self.engine.mode}, pid {os.getpid()}")
        self.hooks.ready(line)

    # --- the loop ---------------------------------------------------------------------
    def _between_notes(self, now: int) -> None:
        """A reload asked for, the control socket's requests, then the chores due (the port
        list at once after a failed send)."""
        if self.hangups != self.reloads:
            self.reloads = self.hangups
            self.apply_reload()
        if self.control is not None and self.control.hub.pending:
            self.control.hub.apply(self)
        assert self.supervisor is not None
        self.chores.run_due(now, also="ports" if self.supervisor.send_failed else None)

    def _urgent(self) -> bool:
        """A reload, a failed send or a client's request waits for no chore time."""
        assert self.supervisor is not None
        return (self.hangups != self.reloads or self.supervisor.send_failed
                or (self.control is not None and self.control.hub.pending))

    def loop(self) -> int:
        """Run until a stop signal. Returns the exit code. Blocks."""
        assert self.engine is not None
        get = self.queue.get
        monotonic_ns = time.monotonic_ns
        self.chores = self.build_chores()
        self.chores.start(monotonic_ns())
        self.engine.begin(monotonic_ns())
        deadline = self.engine.tick(monotonic_ns())
        hub = self.control.hub if self.control is not None else None
        while self.stop_signal is None and not self.server_gone:
            if hub is not None:
                hub.deadline_ns = deadline  # the socket's thread keeps off the GIL just before it
            now = monotonic_ns()
            if deadline is not None and deadline - now <= GUARD_NS:
                # Something is due within the guard: it goes out before anything more is fed.
                if deadline - now > SPIN_NS:
                    time.sleep((deadline - SPIN_NS - now) / NS_PER_S)
                while monotonic_ns() < deadline:
                    time.sleep(0)
                deadline = self.engine.tick(monotonic_ns())
                if self._urgent():
                    self._between_notes(monotonic_ns())
                    deadline = self.engine.tick(monotonic_ns())
                continue
            chore_at = self._chore_time(deadline)
            due = chore_at if deadline is None else min(deadline - GUARD_NS, chore_at)
            timeout = min(max(due - now, 0) / NS_PER_S, MAX_WAIT_S)
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
            if now >= self._chore_time(deadline) or self._urgent():
                self._between_notes(now)
                deadline = self.engine.tick(monotonic_ns())
            if deadline is None or deadline - now >= IDLE_MARGIN_NS:
                self.idle.run(now)
        if self.hooks.notifier is not None:
            self.hooks.notifier.stopping()
        if self.stop_signal is None:
            log.error("the JACK server went away: mididuet's JACK clients cannot be reopened in this "
                      "process; releasing what it can and exiting with status %d (systemd restarts it; "
                      "in a terminal, start it again once JACK runs)", EXIT_SERVER_GONE)
            return EXIT_SERVER_GONE
        log.info("stopping on signal %s: releasing notes, closing ports", signal.Signals(self.stop_signal).name)
        return EXIT_OK

    def _chore_time(self, deadline: int | None) -> int:
        """When the chores may run: when due, but never just before a note (a chore that
        falls due within the idle margin before a deadline waits until that note is out)."""
        chore_at = self.chores.next_due()
        if chore_at is None:
            chore_at = time.monotonic_ns() + int(MAX_WAIT_S * NS_PER_S)
        if deadline is not None and chore_at > deadline - IDLE_MARGIN_NS:
            return max(chore_at, deadline + 1)
        return chore_at

    def run(self) -> int:
        """Open, loop, close. Returns the exit code; raises ``MididuetError`` from setup."""
        previous = self._install_signals()
        try:
            self.open()
            self.set_realtime()
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


class TokenLogger(Observer):
    """Logs each token played (debug logging only)."""

    def played(self, token: str, t_ns: int) -> None:
        log.debug("play token %s", token)


def get_nowait(q: queue.SimpleQueue[Any]) -> Any:
    """The next item, or None when the queue is empty."""
    try:
        return q.get_nowait()
    except queue.Empty:
        return None


def run(options: RunOptions, hooks: RunHooks | None = None) -> int:
    """Run the daemon until SIGTERM/SIGINT; returns the exit code. Raises ``MididuetError``."""
    return Runner(options, hooks).run()
