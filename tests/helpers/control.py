"""A raw client of the control socket for tests: lines in, JSON out, nothing hidden."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any


class LineClient:
    """One connection; :meth:`send_raw` writes any bytes, :meth:`read` takes one JSON line."""

    def __init__(self, path: Path, timeout: float = 3.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.buffer = b""
        self.ids = 0
        self.events: list[dict[str, Any]] = []  # events read while waiting for replies

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, cmd: str, **fields: Any) -> int:
        self.ids += 1
        self.send_raw(json.dumps({"cmd": cmd, "id": self.ids, **fields}).encode() + b"\n")
        return self.ids

    def read(self, timeout: float = 3.0) -> dict[str, Any] | None:
        """The next message, or None at EOF. Raises ``TimeoutError``."""
        end = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            self.sock.settimeout(max(end - time.monotonic(), 0.001))
            data = self.sock.recv(65536)
            if not data:
                return None
            self.buffer += data
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def reply(self, request_id: int | None = None, timeout: float = 3.0) -> dict[str, Any]:
        """The next reply (to ``request_id`` when given); events meanwhile go to :attr:`events`."""
        end = time.monotonic() + timeout
        while True:
            message = self.read(max(end - time.monotonic(), 0.001))
            assert message is not None, "the daemon closed the connection"
            if "event" in message:
                self.events.append(message)
            elif request_id is None or message.get("id") == request_id:
                return message

    def request(self, cmd: str, **fields: Any) -> dict[str, Any]:
        return self.reply(self.send(cmd, **fields))

    def closed(self, timeout: float = 3.0) -> bool:
        """True when the other side closes within ``timeout`` (what it sent meanwhile is read)."""
        end = time.monotonic() + timeout
        try:
            while time.monotonic() < end:
                if self.read(max(end - time.monotonic(), 0.001)) is None:
                    return True
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False
        return False

    def close(self) -> None:
        self.sock.close()
