"""The control protocol: line-delimited JSON over the control socket (docs/control-protocol.md).

Shared by the daemon's server and the clients (``mididuet watch``, ``status``), so it
imports nothing heavy: no engine, no onnxruntime.

Each line is one JSON object, UTF-8, ending in ``\\n``. A client sends requests
(``{"cmd": "status", "id": 1}``); the daemon answers each with one reply carrying the
same ``id`` (``{"id": 1, "ok": true, ...}`` or ``{"id": 1, "ok": false, "error": CODE,
"message": "..."}``) and, once subscribed, sends events (``{"event": "note", ...}``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

# A request line longer than this is refused (a reply, then the rest of the line skipped).
MAX_LINE = 4096
VERSION = 1
COMMANDS = ("status", "subscribe", "unsubscribe", "set", "panic", "controls")
# Event kinds, each with its fields after ``event`` in the order the loop queues them.
EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "note": ("t", "side", "on", "note", "velocity", "channel"),  # side: "in" (the player) or "out"
    "cc": ("t", "side", "control", "value", "channel"),
    "decided": ("t", "token", "due"),  # the next token, decided ahead of its deadline
    "played": ("t", "token"),
    "changed": ("t", "name", "value"),  # a control (mode, temperature, ...) or panic: from a CC or a client
    "ports": ("t", "ports"),
    "warning": ("t", "level", "message"),
    "status": ("t", "status"),  # every STATUS_EVERY_S, and at once after subscribe
    "lost": ("t", "count"),  # events this client missed (the daemon could not keep up)
}
EVENTS = tuple(EVENT_FIELDS)
# Errors, by code.
BAD_JSON, TOO_LONG, BAD_REQUEST, UNKNOWN_COMMAND, UNKNOWN_CONTROL, BAD_VALUE, REFUSED = (
    "bad-json", "too-long", "bad-request", "unknown-command", "unknown-control", "bad-value", "refused")


class ProtocolError(ValueError):
    """A request refused: ``code`` (one of the error codes) and a message for people."""

    def __init__(self, code: str, message: str, request_id: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.request_id = request_id

    def reply(self) -> dict[str, Any]:
        return error_reply(self.request_id, self.code, str(self))


@dataclass
class Request:
    """A request that parsed: its command, id and the rest of its fields."""

    cmd: str
    id: Any = None
    fields: dict[str, Any] = field(default_factory=dict)


def encode(message: dict[str, Any]) -> bytes:
    """One line: compact JSON and ``\\n``."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode() + b"\n"


def error_reply(request_id: Any, code: str, message: str) -> dict[str, Any]:
    return {"id": request_id, "ok": False, "error": code, "message": message}


def ok_reply(request_id: Any, **fields: Any) -> dict[str, Any]:
    return {"id": request_id, "ok": True, **fields}


def parse_request(line: bytes) -> Request:
    """A request from one line (without its ``\\n``). Raises :class:`ProtocolError`."""
    if len(line) > MAX_LINE:
        raise ProtocolError(TOO_LONG, f"a request line may be at most {MAX_LINE} bytes, got {len(line)}")
    try:
        message = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise ProtocolError(BAD_JSON, f"not a JSON line: {err}") from None
    if not isinstance(message, dict):
        raise ProtocolError(BAD_REQUEST, f"a request is a JSON object, got {type(message).__name__}")
    request_id = message.pop("id", None)
    if not (request_id is None or isinstance(request_id, int | str)) or isinstance(request_id, bool):
        raise ProtocolError(BAD_REQUEST, "id must be an integer or a string")
    if isinstance(request_id, str) and len(request_id) > 64:
        raise ProtocolError(BAD_REQUEST, "id may be at most 64 characters")
    cmd = message.pop("cmd", None)
    if not isinstance(cmd, str):
        raise ProtocolError(BAD_REQUEST, "a request needs \"cmd\": a string", request_id)
    if cmd not in COMMANDS:
        raise ProtocolError(UNKNOWN_COMMAND, f"cmd must be one of {', '.join(COMMANDS)}, got {cmd[:40]!r}",
                            request_id)
    return Request(cmd, request_id, message)


def event_kinds(request: Request) -> frozenset[str]:
    """The events a ``subscribe`` asks for (``events``: a list of kinds; all when absent)."""
    wanted = request.fields.get("events")
    if wanted is None:
        return frozenset(EVENTS)
    if not isinstance(wanted, list) or not all(isinstance(kind, str) for kind in wanted):
        raise ProtocolError(BAD_REQUEST, "events must be a list of event kinds", request.id)
    unknown = [kind for kind in wanted if kind not in EVENT_FIELDS]
    if unknown:
        raise ProtocolError(BAD_VALUE, f"events must be among {', '.join(EVENTS)}, got {unknown[0][:40]!r}",
                            request.id)
    return frozenset(wanted) | {"lost"}


def event_message(item: tuple[Any, ...]) -> dict[str, Any]:
    """The JSON object of a queued event ``(kind, *values)``."""
    kind = item[0]
    return {"event": kind, **dict(zip(EVENT_FIELDS[kind], item[1:], strict=True))}


def read_lines(buffer: bytearray, data: bytes) -> list[bytes]:
    """Append ``data`` to ``buffer`` and take out the complete lines (without ``\\n``)."""
    buffer += data
    if b"\n" not in data:
        return []
    *lines, rest = bytes(buffer).split(b"\n")
    buffer[:] = rest
    return lines
