"""A keyboard and a monitor in a child process, for a JACK server this process cannot reach.

The test process's libjack is the session's (jackd2's, through python-rtmidi's wheel):
it can reach neither PipeWire nor a second jackd. :class:`RemoteClients` runs a
:class:`~.jack.Player` and a :class:`~.jack.Monitor` in a child with the server's
environment; :attr:`RemoteClients.player` and :attr:`RemoteClients.monitor` behave as
the local ones do (the same methods, arrivals stamped with the same CLOCK_MONOTONIC), so
a test written for the session's server runs unchanged on another one.

The child speaks one JSON object per line on stdin and stdout:
``{"op": "play" | "chord" | "send" | "events" | "quit", ...}``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import mido

from .jack import REPO, Monitor, Player


class RemoteMonitor(Monitor):
    """The child's monitor: :attr:`messages` fetches what arrived since the last look."""

    def __init__(self, clients: RemoteClients, name: str) -> None:
        self._clients = clients
        self._seen: list[tuple[int, mido.Message]] = []
        self._fetched = 0
        self.name = name

    @property  # type: ignore[override]
    def messages(self) -> list[tuple[int, mido.Message]]:
        new = self._clients.ask({"op": "events", "since": self._fetched})
        self._fetched += len(new)
        self._seen.extend((t, mido.Message.from_bytes(data)) for t, data in new)
        return self._seen

    def close(self) -> None:
        pass  # the child closes its ports on quit


class RemotePlayer(Player):
    """The child's player: each call plays there and returns when it has been played."""

    def __init__(self, clients: RemoteClients, name: str) -> None:
        self._clients = clients
        self.name = name

    def send(self, msg: mido.Message) -> None:
        self._clients.ask({"op": "send", "bytes": msg.bytes()})

    def play(self, notes: list[int], step: float = 0.06, length: float = 0.04, velocity: int = 80,
             channel: int = 0) -> None:
        self._clients.ask({"op": "play", "notes": notes, "step": step, "length": length, "velocity": velocity,
                           "channel": channel})

    def chord(self, notes: list[int], spread: float = 0.005, length: float = 0.1, velocity: int = 80) -> None:
        self._clients.ask({"op": "chord", "notes": notes, "spread": spread, "length": length, "velocity": velocity})

    def close(self) -> None:
        pass


class RemoteClients:
    """A child process holding a player ``CLIENT-player:out`` and a monitor ``CLIENT-monitor:in``."""

    def __init__(self, env: dict[str, str], client: str, timeout: float = 20.0) -> None:
        self.timeout = timeout
        self.process = subprocess.Popen([sys.executable, "-m", "tests.helpers.remote", client], cwd=REPO,
                                        env={**os.environ, **env}, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True)
        self.player = RemotePlayer(self, f"{client}-player:out")
        self.monitor = RemoteMonitor(self, f"{client}-monitor:in")
        if self._read() != "open":
            raise RuntimeError(f"the remote clients did not open (exit code {self.process.poll()})")

    def _read(self) -> Any:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the remote clients exited ({self.process.poll()})")
        return json.loads(line)

    def ask(self, request: dict[str, Any]) -> Any:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.ask({"op": "quit"})
                self.process.wait(timeout=5)
            except (BrokenPipeError, RuntimeError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()


def serve(client: str) -> int:
    """The child: open the clients, then answer requests until ``quit`` or EOF."""
    monitor = Monitor(client=f"{client}-monitor")
    player = Player(client=f"{client}-player")
    print(json.dumps("open"), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        op = request.pop("op")
        reply: Any = "ok"
        if op == "play":
            player.play(**request)
        elif op == "chord":
            player.chord(**request)
        elif op == "send":
            player.send(mido.Message.from_bytes(request["bytes"]))
        elif op == "events":
            reply = [(t, m.bytes()) for t, m in monitor.messages[request["since"]:]]
        print(json.dumps(reply), flush=True)
        if op == "quit":
            break
    player.close()
    monitor.close()
    return 0


if __name__ == "__main__":
    sys.exit(serve(sys.argv[1]))
