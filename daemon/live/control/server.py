"""The control socket's own thread: accept, read requests, write events and replies.

One thread, a ``selectors`` loop over the listening socket, the clients and a wake-up
pipe, all non-blocking. It never runs on the playing loop: the loop only appends to the
hub's deques (:mod:`.hub`) and, for a reply, writes a byte to the pipe. The thread is
started before the loop takes its real-time priority, so it does not inherit the loop's.

- It stays off the GIL in the last :data:`QUIET_NS` before the loop's next deadline.
- Once the loop has real-time priority, this thread gets the lowest real-time priority
  (:meth:`ControlServer.set_realtime`): it shares the GIL with the loop, and a thread
  holding the GIL must not wait behind ordinary processes while the loop waits for it.
- A connection from another uid (``SO_PEERCRED``) is refused with one error line and
  closed; so is one beyond :data:`MAX_CLIENTS`.
- Each client has an output buffer of at most :data:`CLIENT_BUFFER` bytes beyond what the
  kernel holds. Events are encoded once per flush (every :data:`FLUSH_S` while someone is
  subscribed) and appended to each subscriber's buffer; one that would overflow while it
  still holds unread bytes is dropped on the spot with a log line: a stuck client is never
  waited for.
- Bad input gets an error reply and changes nothing (:mod:`.protocol`); requests that
  check out go to the loop, which applies them between notes and queues the reply.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import controls
from .hub import ControlHub, WarningRelay, finish_status
from .paths import Claim, ControlPathError, SocketInUse, socket_path
from .protocol import (
    BAD_REQUEST,
    EVENTS,
    MAX_LINE,
    REFUSED,
    TOO_LONG,
    UNKNOWN_CONTROL,
    ProtocolError,
    Request,
    encode,
    error_reply,
    event_kinds,
    event_message,
    ok_reply,
    parse_request,
)

log = logging.getLogger("mididuet.control")

MAX_CLIENTS = 8
CLIENT_BUFFER = 64 * 1024  # beyond the kernel's ~200 KiB: ~4 s of a 2,000 message/s flood's events in all
FLUSH_S = 0.02  # events reach a watcher within this (and 50 updates a second at most)
# The thread waits out the loop's last QUIET_NS before a deadline and QUIET_AFTER_NS after
# it, so the loop never waits for the GIL while it sends a note.
QUIET_NS = 3_000_000
QUIET_AFTER_NS = 500_000
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
_ALL = frozenset(EVENTS)


@dataclass(eq=False)
class Client:
    """One connection and what the thread keeps for it."""

    id: int
    sock: socket.socket
    pid: int
    inbuf: bytearray = field(default_factory=bytearray)
    out: bytearray = field(default_factory=bytearray)
    kinds: frozenset[str] = frozenset()  # the events subscribed to; empty: none
    skipping: bool = False  # inside a line that was too long: dropped up to its newline
    stalled_since: float | None = None  # when the kernel last refused more bytes, while some waited
    writing: bool = False  # registered for EVENT_WRITE


class ControlServer:
    """The listening socket and its thread. :meth:`close` stops it and removes the socket."""

    def __init__(self, claim: Claim, hub: ControlHub, buffer_limit: int = CLIENT_BUFFER) -> None:
        self.claim = claim
        self.path = claim.path
        self.hub = hub
        self.buffer_limit = buffer_limit
        self.clients: dict[int, Client] = {}
        self.dropped = 0  # clients dropped for not reading
        self.refused = 0  # connections refused (another uid, too many)
        self._ids = 0
        self._stop = False
        self._last_seq = 0
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            self._listener.bind(str(self.path))
            self._listener.listen(MAX_CLIENTS)
        except OSError:
            self._listener.close()
            raise
        self._listener.setblocking(False)
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        hub.wake_io = self.wake
        self._relay = WarningRelay(hub)
        self._thread = threading.Thread(target=self._run, name="mididuet-control", daemon=True)

    def start(self) -> None:
        logging.getLogger("mididuet").addHandler(self._relay)
        self._thread.start()

    def set_realtime(self, priority: int = 1) -> None:
        """SCHED_FIFO at ``priority`` for the socket's thread (below the loop's); without
        permission it stays as it is."""
        try:
            os.sched_setscheduler(self._thread.native_id or 0, os.SCHED_FIFO, os.sched_param(priority))
        except (AttributeError, OSError) as err:
            log.debug("control socket's thread keeps its priority: %s", err)

    def wake(self) -> None:
        """Make the thread look at the hub now (a reply waits). Never blocks."""
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"\0")

    def close(self) -> None:
        """Stop the thread, close every connection, remove the socket. Safe to call twice."""
        if self._stop:
            return
        self._stop = True
        logging.getLogger("mididuet").removeHandler(self._relay)
        self.wake()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
        for client in list(self.clients.values()):
            self._close(client)
        self._selector.close()
        self._listener.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
        self.claim.release()

    # --- the thread ----------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._stop:
                busy = self.hub.active or any(client.out for client in self.clients.values())
                ready = self._selector.select(FLUSH_S if busy else None)
                self._keep_clear()
                for key, mask in ready:
                    if key.fileobj is self._listener:
                        self._accept()
                    elif key.fileobj == self._wake_r:
                        with contextlib.suppress(BlockingIOError):
                            os.read(self._wake_r, 4096)
                    else:
                        client = key.data
                        if mask & selectors.EVENT_READ:
                            self._read(client)
                        if mask & selectors.EVENT_WRITE and client.id in self.clients:
                            self._send(client)
                self._flush()
        except Exception:  # the music goes on without the socket
            log.exception("the control socket's thread failed; mididuet plays on without it")

    def _keep_clear(self) -> None:
        """Sleep (GIL released) through the loop's last stretch before its next deadline."""
        deadline = self.hub.deadline_ns
        if deadline is not None:
            ahead = deadline - time.monotonic_ns()
            if 0 < ahead <= QUIET_NS:
                time.sleep((ahead + QUIET_AFTER_NS) / 1e9)

    def _accept(self) -> None:
        try:
            conn, _ = self._listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        conn.setblocking(False)
        pid, uid, _gid = _PEERCRED.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))
        why = None
        if uid != os.getuid():
            why = f"only uid {os.getuid()} may connect, not uid {uid}"
        elif len(self.clients) >= MAX_CLIENTS:
            why = f"at most {MAX_CLIENTS} clients at once"
        if why is not None:
            self.refused += 1
            log.warning("control socket: refused a connection from pid %d (uid %d): %s", pid, uid, why)
            with contextlib.suppress(OSError):
                conn.send(encode(error_reply(None, REFUSED, why)))
            conn.close()
            return
        self._ids += 1
        client = Client(self._ids, conn, pid)
        self.clients[client.id] = client
        self._selector.register(conn, selectors.EVENT_READ, client)
        log.debug("control client %d connected (pid %d)", client.id, pid)

    def _read(self, client: Client) -> None:
        try:
            data = client.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            log.debug("control client %d (pid %d) left", client.id, client.pid)
            self._close(client)
            return
        for line in self._lines(client, data):
            if client.id not in self.clients:
                return
            self._handle(client, line)

    def _lines(self, client: Client, data: bytes) -> list[bytes | None]:
        """The complete lines in ``data``; None for a line found too long before its end."""
        buf = client.inbuf
        buf += data
        lines: list[bytes | None] = []
        while True:
            end = buf.find(b"\n")
            if end < 0:
                if len(buf) > MAX_LINE:
                    if not client.skipping:
                        lines.append(None)
                    client.skipping = True
                    buf.clear()
                return lines
            line = bytes(buf[:end])
            del buf[:end + 1]
            if client.skipping:
                client.skipping = False  # that was the end of the long line
            else:
                lines.append(line.rstrip(b"\r"))

    def _handle(self, client: Client, line: bytes | None) -> None:
        try:
            if line is None:
                raise ProtocolError(TOO_LONG, f"a request line may be at most {MAX_LINE} bytes")
            if not line.strip():
                return
            request = parse_request(line)
            self._dispatch(client, request)
        except ProtocolError as err:
            self._queue(client, encode(err.reply()))
            self._send(client)

    def _dispatch(self, client: Client, request: Request) -> None:
        if request.cmd == "controls":
            described = [control.describe() for control in controls.CONTROLS.values()]
            self._reply(client, ok_reply(request.id, controls=described))
            return
        if request.cmd == "unsubscribe":
            client.kinds = frozenset()
            self._update_active()
            self._reply(client, ok_reply(request.id))
            return
        if request.cmd == "subscribe":
            client.kinds = event_kinds(request)
            self._update_active()
        elif request.cmd == "set":
            name = request.fields.get("name")
            if not isinstance(name, str):
                raise ProtocolError(BAD_REQUEST, "set needs \"name\": a control's name", request.id)
            control = controls.CONTROLS.get(name)
            if control is None:
                raise ProtocolError(UNKNOWN_CONTROL, f"name must be one of {', '.join(controls.CONTROLS)}, "
                                    f"got {name[:40]!r}", request.id)
            if "value" not in request.fields:
                raise ProtocolError(BAD_REQUEST, "set needs \"value\"", request.id)
            try:
                request.fields["value"] = control.check(request.fields["value"])
            except ProtocolError as err:
                err.request_id = request.id
                raise
        self.hub.requests.append((client.id, request))
        self.hub.wake_loop()

    def _reply(self, client: Client, reply: dict[str, Any]) -> None:
        self._queue(client, encode(reply))
        self._send(client)

    def _update_active(self) -> None:
        self.hub.active = any(client.kinds for client in self.clients.values())

    def _flush(self) -> None:
        """The loop's replies and events, onto the clients' buffers, then sent."""
        hub = self.hub
        while hub.replies:
            client_id, reply = hub.replies.popleft()
            client = self.clients.get(client_id)
            if client is not None:
                if "status" in reply:
                    reply["status"] = self._finish(reply["status"])
                self._queue(client, encode(reply))
        if hub.events:
            self._fan_out(self._take_events())
        for client in list(self.clients.values()):
            if client.out:
                self._send(client)

    def _take_events(self) -> list[tuple[str, bytes]]:
        events = self.hub.events
        lines: list[tuple[str, bytes]] = []
        lost = 0
        while events:
            try:
                seq, *item = events.popleft()
            except IndexError:
                break
            lost += seq - self._last_seq - 1
            self._last_seq = seq
            message = event_message(tuple(item))
            if item[0] == "status":
                message["status"] = self._finish(message["status"])
            lines.append((item[0], encode(message)))
        if lost > 0:
            lines.append(("lost", encode(event_message(("lost", time.monotonic_ns(), lost)))))
        return lines

    def _fan_out(self, lines: list[tuple[str, bytes]]) -> None:
        everything = b"".join(line for _, line in lines)
        for client in list(self.clients.values()):
            if not client.kinds:
                continue
            chunk = everything if client.kinds == _ALL else b"".join(
                line for kind, line in lines if kind in client.kinds)
            if chunk:
                self._queue(client, chunk)

    def _finish(self, status: dict[str, Any]) -> dict[str, Any]:
        finished = finish_status(status)
        finished["control"] = {"path": str(self.path), "clients": len(self.clients)}
        return finished

    def _queue(self, client: Client, data: bytes) -> None:
        if client.id not in self.clients:
            return
        # Only a client that still holds unread bytes is to blame: a batch bigger than the buffer
        # to one that has read everything is the server thread's own backlog (bounded by the hub's).
        if client.out and len(client.out) + len(data) > self.buffer_limit:
            stalled = 0.0 if client.stalled_since is None else time.monotonic() - client.stalled_since
            self.dropped += 1
            log.warning("control client %d (pid %d) dropped: it left %d bytes unread (stalled %.2f s); "
                        "the daemon never waits for a client", client.id, client.pid, len(client.out), stalled)
            self._close(client)
            return
        client.out += data

    def _send(self, client: Client) -> None:
        if client.id not in self.clients or not client.out:
            return
        try:
            sent = client.sock.send(client.out)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._close(client)
            return
        del client.out[:sent]
        if client.out:
            if sent == 0 and client.stalled_since is None:
                client.stalled_since = time.monotonic()
            elif sent:
                client.stalled_since = None
            if not client.writing:
                client.writing = True
                self._selector.modify(client.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, client)
        else:
            client.stalled_since = None
            if client.writing:
                client.writing = False
                self._selector.modify(client.sock, selectors.EVENT_READ, client)

    def _close(self, client: Client) -> None:
        if self.clients.pop(client.id, None) is None:
            return
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._selector.unregister(client.sock)
        client.sock.close()
        self._update_active()


def open_server(name: str | None, wake_loop: Callable[[], None],
                environ: Mapping[str, str] | None = None) -> ControlServer | None:
    """The control socket for ``--control NAME``, listening; None (said in a log line) when
    it is switched off, held by another daemon, or its place is unsafe: the music does
    not depend on it."""
    path = socket_path(name, environ)
    if path is None:
        return None
    try:
        claim = Claim.take(path, environ)
    except SocketInUse as err:
        log.warning("%s: this one plays but cannot be watched (give it its own with --control NAME)", err)
        return None
    except ControlPathError as err:
        log.warning("no control socket (mididuet watch will not find this one): %s", err)
        return None
    try:
        server = ControlServer(claim, ControlHub(wake_loop))
    except OSError as err:
        claim.release(unlink=False)
        log.warning("no control socket at %s: %s", path, err.strerror or err)
        return None
    server.start()
    log.info("control socket %s (mididuet watch, mididuet status)", path)
    return server
