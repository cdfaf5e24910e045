"""The loop's side of the control socket: events out, requests in, never a wait.

:class:`ControlHub` is an engine :class:`..engine.observe.Observer` and the runner's
handle on the socket. On the loop's thread it only appends tuples to one deque
(:attr:`ControlHub.events`, bounded: if the socket's thread falls behind, the oldest go
and the clients are told how many they lost); the socket's thread
(:mod:`.server`) encodes them and hands each client its own bounded buffer. With no
client subscribed, an observer call is one attribute test.

Requests come the other way: the socket's thread checks them, appends them to
:attr:`ControlHub.requests` and wakes the loop through the intake queue (as a signal
does); the loop applies them between notes (:meth:`ControlHub.apply`) and appends the
replies to :attr:`ControlHub.replies`. Deque appends and pops are atomic in CPython:
no lock is shared between the threads.

The status (:func:`snapshot`) is read on the loop's thread, where the engine lives, but
only copied there: the percentiles are worked out on the socket's thread
(:func:`finish_status`).
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import mido

from ...engine.engine import Engine
from ...engine.observe import Observer
from ...engine.stats import Histogram, Stats
from ...listen.intake import Intake
from ...listen.parse import Parser
from ...music.units import NS_PER_MINUTE, NS_PER_MS, NS_PER_S
from ...predict.bundle import ModelRunner
from ..supervisor import PortSupervisor
from . import controls
from .protocol import VERSION, Request, ok_reply

# Events waiting for the socket's thread: ~4 s of a 2,000 message/s flood.
EVENT_BACKLOG = 8192
STATUS_EVERY_S = 0.5  # a status event this often to subscribers (stats, pulse, ports)
RECENT_S = 5.0  # the "live" percentiles are over this much of the past
_RECENT = int(RECENT_S / STATUS_EVERY_S)


class RunState(Protocol):
    """What the hub reads of the runner (:class:`..runner.Runner`)."""

    engine: Engine | None
    model: ModelRunner | None
    supervisor: PortSupervisor | None
    stats: Stats
    intake: Intake
    parser: Parser


class ControlHub(Observer):
    """Events from the loop, requests to it. Its methods run on the loop's thread, but for
    :meth:`warning`, which any thread may call."""

    def __init__(self, wake_loop: Callable[[], None]) -> None:
        self.events: deque[tuple[Any, ...]] = deque(maxlen=EVENT_BACKLOG)
        self.requests: deque[tuple[int, Request]] = deque()  # (client id, request), to the loop
        self.replies: deque[tuple[int, dict[str, Any]]] = deque()  # (client id, reply), to the clients
        self.active = False  # some client is subscribed (written by the socket's thread)
        self.deadline_ns: int | None = None  # the loop's next deadline (written by the loop)
        self.wake_loop = wake_loop
        self.wake_io: Callable[[], None] = lambda: None  # set by the server
        self._seq = itertools.count(1)  # next() is atomic: the warning relay counts from any thread
        self.started_ns = time.monotonic_ns()
        self._history: deque[tuple[Histogram, Histogram]] = deque(maxlen=_RECENT + 1)

    @property
    def earliest(self) -> tuple[Histogram, Histogram] | None:
        """The oldest stats copy kept (about :data:`RECENT_S` ago), or None before the first."""
        return self._history[0] if self._history else None

    @property
    def pending(self) -> bool:
        """Requests wait for the loop."""
        return bool(self.requests)

    def push(self, *event: Any) -> None:
        """Queue one event ``(kind, t_ns, ...)`` (see :data:`.protocol.EVENT_FIELDS`)."""
        self.events.append((next(self._seq), *event))

    # --- the engine's observer -------------------------------------------------------------
    def heard(self, msg: mido.Message, t_ns: int) -> None:
        if self.active:
            self._message("in", msg, t_ns)

    def sent(self, msg: mido.Message, t_ns: int) -> None:
        if self.active:
            self._message("out", msg, t_ns)

    def _message(self, side: str, msg: mido.Message, t_ns: int) -> None:
        kind = msg.type
        if kind == "note_on":
            self.push("note", t_ns, side, msg.velocity > 0, msg.note, msg.velocity, msg.channel + 1)
        elif kind == "note_off":
            self.push("note", t_ns, side, False, msg.note, msg.velocity, msg.channel + 1)
        elif kind == "control_change":
            self.push("cc", t_ns, side, msg.control, msg.value, msg.channel + 1)

    def played(self, token: str, t_ns: int) -> None:
        if self.active:
            self.push("played", t_ns, token)

    def decided(self, token: str, due_ns: int | None, t_ns: int) -> None:
        if self.active:
            self.push("decided", t_ns, token, due_ns)

    def changed(self, what: str, value: object, t_ns: int) -> None:
        if self.active:
            self.push("changed", t_ns, what, value)

    def warning(self, level: str, message: str) -> None:
        if self.active:
            self.push("warning", time.monotonic_ns(), level, message)

    # --- what the runner calls between notes ---------------------------------------------
    def apply(self, run: RunState) -> None:
        """Carry out the requests waiting, and queue their replies."""
        engine = run.engine
        assert engine is not None
        while self.requests:
            client, request = self.requests.popleft()
            if request.cmd == "set":
                control = controls.CONTROLS[request.fields["name"]]
                control.set(engine, request.fields["value"])
                reply = ok_reply(request.id, name=control.name, value=control.get(engine))
            elif request.cmd == "panic":
                engine.panic()  # its changed("panic") event comes through this hub as an observer
                reply = ok_reply(request.id)
            else:  # status, subscribe: the state as it is now
                reply = ok_reply(request.id, status=snapshot(run, self))
            self.replies.append((client, reply))
        self.wake_io()

    def tick(self, run: RunState) -> None:
        """The status chore: keep the stats' history; a status event to subscribers."""
        self._history.append((run.stats.decision.copy(), run.stats.lateness.copy()))
        if self.active:
            self.push("status", time.monotonic_ns(), snapshot(run, self))

    def ports_changed(self, run: RunState) -> None:
        if self.active and run.supervisor is not None:
            self.push("ports", time.monotonic_ns(), ports(run.supervisor))


def ports(supervisor: PortSupervisor) -> list[dict[str, Any]]:
    """Each port: its kind, what was asked, the port open, and ``playing``, ``lost`` or ``missing``."""
    return [{"kind": link.kind, "query": link.query, "name": link.name,
             "state": "playing" if link.playing else "lost" if link.lost else "missing"}
            for link in supervisor.links]


def snapshot(run: RunState, hub: ControlHub) -> dict[str, Any]:
    """The state for a status reply or event, as the loop sees it now; the histograms are
    copies (``_stats``), made into figures by :func:`finish_status` on the socket's thread."""
    engine, model, supervisor, stats = run.engine, run.model, run.supervisor, run.stats
    assert engine is not None and model is not None and supervisor is not None
    now = time.monotonic_ns()
    ioi = engine.listener.median_ioi_ns()
    pulse = engine.pulse_ns(now)
    return {
        "version": VERSION, "pid": os.getpid(), "uptime_s": round((now - hub.started_ns) / NS_PER_S, 1),
        "model": {"name": model.path.name, "tokens": model.info.size, "expressive": model.expressive},
        "rhythm": "expressive" if engine.encoding is not None else "pulse",
        "memory_tokens": len(engine.memory),
        "controls": controls.values(engine),
        "playing": engine.playing,
        "pulse": {"source": engine.pulse.source(now, ioi), "bpm": round(NS_PER_MINUTE / pulse, 1)},
        "ports": ports(supervisor),
        "counts": {"notes_in": stats.notes_in, "notes_out": stats.notes_out, "answers": stats.answers,
                   "input": run.intake.accepted, "dropped": run.intake.dropped_total,
                   "malformed": run.parser.malformed},
        "_stats": (stats.decision.copy(), stats.lateness.copy(), hub.earliest),
    }


def _figures(h: Histogram) -> dict[str, float | int]:
    return {"notes": h.count, "p50": round(h.percentile(50) / NS_PER_MS, 3),
            "p99": round(h.percentile(99) / NS_PER_MS, 3), "max": round(h.max_ns / NS_PER_MS, 3)}


def finish_status(status: dict[str, Any]) -> dict[str, Any]:
    """A :func:`snapshot` made ready to send: the histogram copies become ms figures, over
    the whole run and over the last :data:`RECENT_S` (``recent``)."""
    decision, lateness, earliest = status.pop("_stats")
    out = {**status, "decision_ms": _figures(decision), "lateness_ms": _figures(lateness)}
    if earliest is not None:
        out["recent"] = {"seconds": RECENT_S, "decision_ms": _figures(decision.since(earliest[0])),
                         "lateness_ms": _figures(lateness.since(earliest[1]))}
    return out


class WarningRelay(logging.Handler):
    """mididuet's warnings and errors, as events (the last ones show in ``mididuet watch``)."""

    def __init__(self, hub: ControlHub) -> None:
        super().__init__(logging.WARNING)
        self.hub = hub

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.hub.warning(record.levelname.lower(), record.getMessage())
        except Exception:  # a log call must never fail because of the relay
            self.handleError(record)
