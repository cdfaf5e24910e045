"""The runner: drive the engine in real time between two MIDI ports.

Threads:

- rtmidi's input thread runs :meth:`Runner._on_message`, which only stamps
  ``time.monotonic_ns()`` at the edge and puts ``(t_ns, msg)`` on a ``SimpleQueue``;
  no lock, no allocation beyond the tuple, no inference (a slow query there would stall
  the MIDI thread).
- The loop (the main thread, so that it also receives signals) waits on the queue until
  the engine's next deadline, feeds what arrived, and ticks the engine.

Signal handlers only record the signal and put a wake-up marker on the queue
(``SimpleQueue.put`` is reentrant, safe in a handler); the loop acts on it. SIGTERM and
SIGINT stop: release every open note (the engine's ledger), close the recorder, close
the ports, exit 0. SIGHUP is recorded in :attr:`Runner.hangups` for the reload work to
come. An output error or any unexpected exception also releases notes, is logged, and
ends the run with a non-zero code.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mido

from daemon import ports
from daemon.bundle import load_bundle
from daemon.settings import EngineSettings

log = logging.getLogger("mididuet.runner")

EXIT_OK = 0
EXIT_FAILED = 1
_WAKE = object()  # put on the queue by a signal handler: "look at the flags now"
# The loop never sleeps longer than this, so a lost wake-up costs at most this much.
MAX_WAIT_S = 0.5
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@dataclass
class RunOptions:
    """Everything ``mididuet run`` needs besides the engine settings."""

    settings: EngineSettings = field(default_factory=EngineSettings)
    model: Path | None = None  # None: the shipped model
    primer: list[str] | None = None
    in_port: str | None = None  # None: a virtual "mididuet in"
    out_port: str | None = None
    api: str | None = None
    record_dir: Path | None = None
    stats_interval_s: float | None = None  # None: no periodic stats
    # SCHED_FIFO priority for the loop thread (0: none). Below JACK's own threads (10 and
    # up), above every normal process, so a busy machine does not delay a note.
    rt_priority: int = 5
    # A Stats (or subclass) to use instead of a new one: benchmarks observe each note through it.
    stats: Any = None
    # Called once ports are open and the model is loaded; the systemd notify hook goes here.
    on_ready: Callable[[str], None] | None = None


def print_ready(line: str) -> None:
    """The default readiness hook: one line on stderr (tests and scripts wait for it)."""
    print(f"mididuet: {line}", file=sys.stderr, flush=True)


class Runner:
    """Owns the ports, the engine and the loop for one ``mididuet run``."""

    def __init__(self, options: RunOptions) -> None:
        self.options = options
        self.queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.stop_signal: int | None = None
        self.hangups = 0
        self.engine: Any = None
        self.recorder: Any = None
        self.stats: Any = None
        self._in: Any = None
        self._out: Any = None

    # --- rtmidi's thread -------------------------------------------------------------
    def _on_message(self, msg: mido.Message) -> None:
        self.queue.put((time.monotonic_ns(), msg))

    # --- signal handlers: record only --------------------------------------------------
    def _on_stop_signal(self, signum: int, _frame: object) -> None:
        self.stop_signal = signum
        self.queue.put(_WAKE)

    def _on_hangup(self, _signum: int, _frame: object) -> None:
        self.hangups += 1
        self.queue.put(_WAKE)

    def _install_signals(self) -> dict[int, Any]:
        previous = {}
        for sig in STOP_SIGNALS:
            previous[sig] = signal.signal(sig, self._on_stop_signal)
        if hasattr(signal, "SIGHUP"):
            previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, self._on_hangup)
        return previous

    # --- setup ----------------------------------------------------------------------
    def open(self) -> None:
        """Load the model, open the ports, build the engine. Raises ``MididuetError``."""
        # Imported here so `mididuet ports` and `--help` never pay for onnxruntime.
        from daemon.engine import Engine
        from daemon.stats import Stats

        opts = self.options
        opts.settings.validate()
        api = ports.select_api(opts.api)
        model = load_bundle(opts.model)
        self._out = ports.open_output(api, opts.out_port)
        self.stats = opts.stats if opts.stats is not None else Stats()
        if opts.record_dir is not None:
            from daemon.record import SessionRecorder

            self.recorder = SessionRecorder(opts.record_dir)
        # Messages arriving from here on wait in the queue, stamped, until the loop runs.
        self._in = ports.open_input(api, opts.in_port, self._on_message)
        # The engine is made last, with the clock read now: opening a JACK client takes
        # milliseconds, and solo's first note is due at the engine's start time.
        self.engine = Engine(model, opts.settings, self._out.send, time.monotonic_ns(),
                             primer=opts.primer, recorder=self.recorder, stats=self.stats)
        if log.isEnabledFor(logging.DEBUG):  # a log call per token only when asked for
            self.engine.on_token = lambda token: log.debug("play token %s", token)
        ready = (f"ready: in {self._in.name!r}, out {self._out.name!r}, api {api.name}, "
                 f"model {model.path.name} ({model.info.size} tokens), mode {opts.settings.mode}, "
                 f"pid {os.getpid()}")
        (opts.on_ready or print_ready)(ready)

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
            try:
                self.engine.release_all()
            except OSError as err:  # the output is gone: nothing can be released any more
                log.warning("could not release notes: output port lost (%s)", err)
        if self.recorder is not None:
            try:
                path = self.recorder.close()
                log.info("recorded %s", path)
            except OSError as err:
                log.error("could not write the recording: %s", err)
        if self._in is not None:
            ports.close_input(self._in)
            self._in = None
        if self._out is not None:
            self._out.close()
            self._out = None
        if self.stats is not None and self.options.stats_interval_s is not None:
            print(f"mididuet: stats at exit: {self.stats.summary()}", file=sys.stderr, flush=True)

    # --- the loop ---------------------------------------------------------------------
    def loop(self) -> int:
        """Run until a stop signal. Returns the exit code. Blocks."""
        engine = self.engine
        get = self.queue.get
        monotonic_ns = time.monotonic_ns
        interval = self.options.stats_interval_s
        next_stats = None if interval is None else monotonic_ns() + int(interval * 1e9)
        deadline = engine.tick(monotonic_ns())
        while self.stop_signal is None:
            now = monotonic_ns()
            due = [t for t in (deadline, next_stats) if t is not None]
            timeout = min(max(min(due) - now, 0) / 1e9, MAX_WAIT_S) if due else MAX_WAIT_S
            try:
                item = get(timeout=timeout) if timeout > 0 else get_nowait(self.queue)
            except queue.Empty:
                item = None
            # Feed everything that has arrived before ticking, so a chord's notes are
            # seen together and a burst does not wait one deadline per message.
            while item is not None:
                if item is not _WAKE:
                    engine.feed(item[1], item[0])
                item = get_nowait(self.queue)
            deadline = engine.tick(monotonic_ns())
            if next_stats is not None and monotonic_ns() >= next_stats:
                print(f"mididuet: stats: {self.stats.summary()}", file=sys.stderr, flush=True)
                next_stats += int(interval * 1e9)
        log.info("stopping on signal %s", signal.Signals(self.stop_signal).name)
        return EXIT_OK

    def run(self) -> int:
        """Open, loop, close. Returns the exit code; raises ``MididuetError`` from setup."""
        previous = self._install_signals()
        try:
            self.open()
            self.set_realtime()
            try:
                return self.loop()
            except OSError as err:
                log.error("output port error: %s; releasing notes and stopping", err)
                return EXIT_FAILED
            except Exception:  # the loop must never leave notes hanging, whatever went wrong
                log.exception("unexpected error; releasing notes and stopping")
                return EXIT_FAILED
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
