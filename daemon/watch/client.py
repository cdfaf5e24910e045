"""A client of a running mididuet's control socket (docs/control-protocol.md).

Blocking and small: ``mididuet status`` asks once; ``mididuet watch`` reads events on a
thread of its own (:meth:`ControlClient.read`) and sends requests from its UI thread
(:meth:`ControlClient.send`: the two directions of one socket may be used by two threads).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from ..errors import MididuetError
from ..live.control.paths import OFF, socket_path
from ..live.control.protocol import REFUSED, encode

CONNECT_TIMEOUT_S = 2.0


class NotRunning(MididuetError):
    """No mididuet answers on the socket."""


def resolve(name: str | None) -> Path:
    """The socket ``--control NAME`` names (the daemon's default without it)."""
    path = socket_path(name)
    if path is None:
        raise MididuetError(f"--control {OFF}: there is no socket to talk to")
    return path


def not_running(path: Path, why: str) -> NotRunning:
    return NotRunning(f"no mididuet is running here ({why}: {path}); start one with `mididuet run`, or "
                      "`systemctl --user start mididuet` for the service (one run with --control NAME: "
                      "add the same --control NAME here)")


class ControlClient:
    """One connection to a daemon. Raises :class:`NotRunning` when nothing answers."""

    def __init__(self, path: Path, timeout: float = CONNECT_TIMEOUT_S) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError) as err:
            self.sock.close()
            raise not_running(path, "nothing listens" if isinstance(err, ConnectionRefusedError)
                              else "no socket") from None
        except PermissionError:
            self.sock.close()
            raise MididuetError(f"cannot reach {path}: permission denied (another user's mididuet?)") from None
        except OSError as err:
            self.sock.close()
            raise not_running(path, err.strerror or str(err)) from None
        self._buffer = bytearray()
        self._send_lock = threading.Lock()  # the UI thread and a status request may both send
        self._ids = 0
        self.backlog: deque[dict[str, Any]] = deque()  # events read while waiting for a reply

    def send(self, cmd: str, **fields: Any) -> int:
        """Send a request; returns its id (its reply carries it). Raises ``OSError``."""
        with self._send_lock:
            self._ids += 1
            self.sock.sendall(encode({"cmd": cmd, "id": self._ids, **fields}))
            return self._ids

    def read(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next message (reply or event); None at the timeout. Raises ``ConnectionError``
        when the daemon goes away."""
        while b"\n" not in self._buffer:
            self.sock.settimeout(timeout)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                return None
            if not data:
                raise ConnectionError("mididuet closed the connection")
            self._buffer += data
        end = self._buffer.index(b"\n")
        line = bytes(self._buffer[:end])
        del self._buffer[:end + 1]
        message = json.loads(line)
        if message.get("error") == REFUSED:
            raise MididuetError(f"mididuet refused the connection: {message.get('message')}")
        return message

    def request(self, cmd: str, timeout: float = CONNECT_TIMEOUT_S, **fields: Any) -> dict[str, Any]:
        """Send a request and wait for its reply (events meanwhile go to :attr:`backlog`).
        Raises :class:`MididuetError` when no reply comes in ``timeout``."""
        request_id = self.send(cmd, **fields)
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            message = self.read(max(left, 0.001)) if left > 0 else None
            if message is None:
                raise MididuetError(f"mididuet at {self.path} did not answer {cmd!r} within {timeout:g} s")
            if "event" in message:
                self.backlog.append(message)
            elif message.get("id") == request_id:
                return message

    def close(self) -> None:
        self.sock.close()
