"""The control socket's server on real sockets: bad input refused, other users refused,
a stuck client dropped without the loop ever waiting.

The loop's side is the hub's API itself (``hub.push`` is what the engine's observer
calls); requests that reach the loop are checked in tests/e2e/test_watch.py against a real
``mididuet run``.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import stat
import struct
import tempfile
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mididuet.daemon.live.control import server as server_module
from mididuet.daemon.live.control.hub import ControlHub
from mididuet.daemon.live.control.paths import Claim
from mididuet.daemon.live.control.protocol import MAX_LINE, encode, event_message
from mididuet.daemon.live.control.server import MAX_CLIENTS, ControlServer, open_server
from tests.helpers.control import LineClient
from tests.helpers.jack import poll

NOBODY = 65534


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ControlServer]:
    path = tmp_path / "control.sock"
    server = ControlServer(Claim.take(path), ControlHub(lambda: None), buffer_limit=16 * 1024)
    server.start()
    yield server
    server.close()
    assert not path.exists(), "the socket is removed at close"


BAD = [
    (b"garbage", "bad-json"),
    (b"\xff\xfe{}", "bad-json"),
    (b"[1, 2]", "bad-request"),
    (b'{"id": 7}', "bad-request"),
    (b'{"cmd": "status", "id": {"a": 1}}', "bad-request"),
    (b'{"cmd": "fly"}', "unknown-command"),
    (b'{"cmd": "set", "name": "volume", "value": 1}', "unknown-control"),
    (b'{"cmd": "set", "name": "temperature"}', "bad-request"),
    (b'{"cmd": "set", "name": "temperature", "value": 9}', "bad-value"),
    (b'{"cmd": "set", "name": "temperature", "value": "hot"}', "bad-value"),
    (b'{"cmd": "set", "name": "temperature", "value": NaN}', "bad-value"),
    (b'{"cmd": "set", "name": "mode", "value": "rock"}', "bad-value"),
    (b'{"cmd": "set", "name": "mute", "value": "yes"}', "bad-value"),
    (b'{"cmd": "subscribe", "events": ["nope"]}', "bad-value"),
    (b"x" * (MAX_LINE + 1), "too-long"),
]


def test_bad_input_gets_an_error_reply_and_reaches_nothing(served: ControlServer) -> None:
    client = LineClient(served.path)
    for line, code in BAD:
        client.send_raw(line + b"\n")
        reply = client.reply()
        assert (reply["ok"], reply["error"]) == (False, code), (line[:60], reply)
        assert reply["message"]
    # A line too long to hold is refused before its end arrives, and its tail is skipped.
    client.send_raw(b'{"cmd": "' + b"y" * (3 * MAX_LINE))
    assert client.reply()["error"] == "too-long"
    client.send_raw(b'y"}\n{"cmd": "controls", "id": 99}\n')
    assert client.reply(99)["ok"] is True
    assert not served.hub.requests, "no bad request reached the loop"
    assert served.clients, "the connection stays open"
    # an id is echoed in the error reply when it parsed
    client.send_raw(b'{"cmd": "set", "id": "k1", "name": "mode", "value": 3}\n')
    assert client.reply() == {"id": "k1", "ok": False, "error": "bad-value",
                              "message": "mode must be one of duet, jam, solo, got 3"}
    client.close()


def test_good_requests_go_to_the_loop_checked(served: ControlServer) -> None:
    woken = threading.Event()
    served.hub.wake_loop = woken.set
    client = LineClient(served.path)
    client.send("set", name="temperature", value=2)
    assert poll(lambda: served.hub.requests, 2)
    (_, request), = served.hub.requests
    assert woken.is_set() and request.cmd == "set" and request.fields == {"name": "temperature", "value": 2.0}
    controls = client.request("controls")["controls"]
    assert {"mode", "temperature", "mute"} <= {c["name"] for c in controls}
    client.close()


def test_more_clients_than_allowed_are_refused(served: ControlServer) -> None:
    clients = [LineClient(served.path) for _ in range(MAX_CLIENTS)]
    assert poll(lambda: len(served.clients) == MAX_CLIENTS, 2)
    extra = LineClient(served.path)
    reply = extra.read()
    assert reply is not None and reply["error"] == "refused" and "at most" in reply["message"]
    assert extra.closed()
    for client in clients:
        client.close()


def queued(sock: socket.socket) -> int:
    """Bytes waiting in a socket's receive queue, read without taking them."""
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0]


def test_a_stuck_client_is_dropped_within_a_second_of_its_buffer_filling_and_never_waited_for(
        served: ControlServer, caplog: pytest.LogCaptureFixture) -> None:
    hub = served.hub
    stuck = LineClient(served.path)
    stuck.send("subscribe")  # and never reads again
    healthy = LineClient(served.path)
    healthy.send("subscribe")
    assert poll(lambda: hub.active and len(served.clients) == 2 and all(c.kinds for c in served.clients.values()), 2)
    rate = 4000  # events a second, as a flood's notes would be
    published = [0]  # bytes queued for each subscriber
    full_at: list[float] = []
    dropped_at: list[float] = []
    pushes: list[int] = []  # how long each push took, ns
    healthy_lines = [0]
    stop = threading.Event()

    def loop() -> None:  # the playing loop's side: push, and never wait
        start = time.monotonic()
        n = 0
        while not stop.is_set() and time.monotonic() - start < 15:
            event = ("note", time.monotonic_ns(), "out", True, 60 + n % 24, 80, 1)
            t0 = time.perf_counter_ns()
            hub.push(*event)
            pushes.append(time.perf_counter_ns() - t0)
            published[0] += len(encode(event_message(event)))
            n += 1
            time.sleep(max(start + n / rate - time.monotonic(), 0))

    def read_healthy() -> None:
        while not stop.is_set():
            try:
                if healthy.read(0.2) is not None:
                    healthy_lines[0] += 1
            except TimeoutError:
                pass

    threads = [threading.Thread(target=loop), threading.Thread(target=read_healthy)]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 12
        while not dropped_at and time.monotonic() < deadline:
            waiting = published[0] - queued(stuck.sock)  # what the server still holds for the stuck client
            if not full_at and waiting >= served.buffer_limit:
                full_at.append(time.monotonic())
            if served.dropped:
                dropped_at.append(time.monotonic())
            time.sleep(0.005)
        lines_at_drop = healthy_lines[0]
        time.sleep(0.3)
        assert healthy_lines[0] > lines_at_drop, "the healthy client is still served"
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert full_at and dropped_at
    assert dropped_at[0] - full_at[0] <= 1.0, (dropped_at[0] - full_at[0])
    # A push never waits for a client: nearly all take microseconds. One may wait for the
    # GIL behind the socket's thread (a switch interval, 5 ms), never for a full buffer.
    pushes.sort()
    assert pushes[int(len(pushes) * 0.99)] < 1_000_000, f"p99 push {pushes[int(len(pushes) * 0.99)] / 1e6:.2f} ms"
    assert pushes[-1] < 20_000_000, f"a push took {pushes[-1] / 1e6:.2f} ms"
    assert len(served.clients) == 1
    assert any("dropped" in r.getMessage() and "unread" in r.getMessage() for r in caplog.records)
    stuck.close()
    healthy.close()


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to run a server as another user")
def test_a_burst_bigger_than_the_buffer_reaches_a_client_that_reads(served: ControlServer) -> None:
    """A batch the server thread took late (a busy machine, a flood) is bigger than a
    client's buffer; the client that has read everything keeps its connection and gets
    it all (a CI run once dropped the healthy client of the stuck-client test this way)."""
    client = LineClient(served.path)
    client.send("subscribe")
    assert poll(lambda: served.hub.active and all(c.kinds for c in served.clients.values()), 2)
    burst = 3 * served.buffer_limit // len(encode(event_message(("note", 0, "out", True, 60, 80, 1)))) + 1
    for n in range(burst):  # one push after another on this thread: far faster than a flush
        served.hub.push("note", time.monotonic_ns(), "out", True, 60 + n % 24, 80, 1)
    notes = 0
    while (line := client.read(2.0)) is not None:
        notes += line.get("event") == "note"
        if notes == burst:
            break
    assert notes == burst and not served.dropped and len(served.clients) == 1


def test_a_connection_from_another_user_is_refused() -> None:
    """The server runs as uid 65534 in a child with its own XDG_RUNTIME_DIR; its own user
    is served, root (who can reach any path) is refused by SO_PEERCRED."""
    # In /tmp itself: pytest's own temporary directories are root's, closed to uid 65534.
    runtime = Path(tempfile.mkdtemp(prefix="mdtest-nobody-"))
    os.chown(runtime, NOBODY, NOBODY)
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            server = open_server(None, lambda: None, environ={"XDG_RUNTIME_DIR": str(runtime)})
            assert server is not None
            own = LineClient(server.path)
            answer = own.request("controls")
            os.write(ready_w, b"served" if answer["ok"] else b"refused")
            os.read(done_r, 1)
            server.close()
            code = 0
        except BaseException as err:  # reported to the parent
            os.write(ready_w, f"child failed: {err!r}".encode())
        finally:
            os._exit(code)
    try:
        assert os.read(ready_r, 200) == b"served"
        directory = runtime / "mididuet"
        info = directory.lstat()
        assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (NOBODY, 0o700)
        root = LineClient(directory / "control.sock")
        reply = root.read()
        assert reply is not None and reply["error"] == "refused" and f"not uid {os.getuid()}" in reply["message"]
        assert root.closed()
    finally:
        os.write(done_w, b"x")
        _, status = os.waitpid(pid, 0)
        shutil.rmtree(runtime)
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_daemon_that_cannot_have_the_socket_plays_on_without_it(tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    env = {"XDG_RUNTIME_DIR": str(tmp_path)}
    first = open_server(None, lambda: None, env)
    assert first is not None
    assert open_server(None, lambda: None, env) is None
    assert f"in use by another mididuet (pid {os.getpid()})" in caplog.text
    first.close()
    assert server_module.open_server("off", lambda: None, env) is None
