"""A stand-in for systemd's end of ``NOTIFY_SOCKET``: a real AF_UNIX datagram socket.

It binds where systemd would (a path, or an abstract ``@name``) and keeps every
datagram it receives, split into ``KEY=value`` fields, so a test can wait for
``READY=1`` or read the ``STATUS=`` lines the daemon sent.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from pathlib import Path

from tests.helpers.jack import poll


class NotifyListener:
    """Receives sd_notify datagrams on ``address`` (``@name`` or a path) on a thread."""

    def __init__(self, path: Path | None = None) -> None:
        self.env_value = str(path) if path is not None else f"@mididuet-test-{uuid.uuid4().hex[:8]}"
        bind_to = "\0" + self.env_value[1:] if path is None else str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(bind_to)
        self.sock.settimeout(0.1)
        self.messages: list[tuple[int, list[str]]] = []  # (monotonic_ns, fields)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.messages.append((time.monotonic_ns(), data.decode().split("\n")))

    def fields(self) -> list[str]:
        return [f for _, fields in list(self.messages) for f in fields]

    def statuses(self) -> list[str]:
        return [f.removeprefix("STATUS=") for f in self.fields() if f.startswith("STATUS=")]

    def wait_for(self, field: str, timeout: float = 10.0) -> bool:
        """True once a datagram carried a field starting with ``field``."""
        return bool(poll(lambda: any(f.startswith(field) for f in self.fields()), timeout, 0.02))

    def wait_for_status(self, text: str, timeout: float = 10.0) -> str:
        found = poll(lambda: next((s for s in self.statuses() if text in s), None), timeout, 0.02)
        assert found, f"no STATUS with {text!r} within {timeout} s; got {self.statuses()}"
        return found

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1)
        self.sock.close()
