"""Tell systemd how the service is doing: the sd_notify protocol, spoken directly.

systemd passes ``NOTIFY_SOCKET`` (a path, or ``@name`` for the abstract namespace) to a
``Type=notify`` service; each notification is one AF_UNIX datagram of ``KEY=value``
lines (``READY=1``, ``STATUS=...``, ``WATCHDOG=1``, ``STOPPING=1``). Speaking it here
takes a dozen lines, so no dependency (python-systemd, sdnotify) is needed.

``WATCHDOG_USEC`` (set when the unit has ``WatchdogSec=``) says how often systemd wants
``WATCHDOG=1``; ``WATCHDOG_PID``, when set, names the process meant. Sending never
raises: a daemon must not stop playing because its supervisor went away.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger("mididuet.notify")

NOTIFY_SOCKET = "NOTIFY_SOCKET"
WATCHDOG_USEC = "WATCHDOG_USEC"
WATCHDOG_PID = "WATCHDOG_PID"


def under_systemd(environ: dict[str, str] | os._Environ[str] | None = None) -> bool:
    """True when systemd listens for notifications (a ``Type=notify`` service)."""
    return bool((os.environ if environ is None else environ).get(NOTIFY_SOCKET))


def socket_address(value: str) -> str:
    """The socket address for a ``NOTIFY_SOCKET`` value: ``@name`` is ``\\0name`` (abstract)."""
    return "\0" + value[1:] if value.startswith("@") else value


class Notifier:
    """A connectionless sender to systemd's notify socket. Not blocking; never raises."""

    def __init__(self, address: str, watchdog_usec: int | None = None) -> None:
        self.address = address
        self.watchdog_usec = watchdog_usec
        self._sock: socket.socket | None = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @classmethod
    def from_environ(cls, environ: dict[str, str] | os._Environ[str] | None = None) -> Notifier | None:
        """A notifier when systemd asked for notifications (``NOTIFY_SOCKET``), else None."""
        env = os.environ if environ is None else environ
        value = env.get(NOTIFY_SOCKET)
        if not value:
            return None
        return cls(socket_address(value), watchdog_interval_usec(env))

    @property
    def watchdog_interval_s(self) -> float | None:
        """How often to send ``WATCHDOG=1``: half systemd's timeout, as sd_watchdog_enabled(3) advises."""
        return None if self.watchdog_usec is None else self.watchdog_usec / 2e6

    def send(self, *fields: str) -> bool:
        """Send ``KEY=value`` fields in one datagram; False (logged) when it could not be sent."""
        if self._sock is None:
            return False
        try:
            self._sock.sendto("\n".join(fields).encode(), self.address)
            return True
        except OSError as err:
            log.debug("could not notify systemd (%s): %s", self.address.lstrip("\0"), err)
            return False

    def ready(self, status: str) -> bool:
        return self.send("READY=1", f"STATUS={status}")

    def status(self, status: str) -> bool:
        return self.send(f"STATUS={status}")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def stopping(self, status: str = "stopping") -> bool:
        return self.send("STOPPING=1", f"STATUS={status}")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval_usec(environ: dict[str, str] | os._Environ[str]) -> int | None:
    """systemd's watchdog timeout in µs when it applies to this process, else None."""
    value = environ.get(WATCHDOG_USEC)
    pid = environ.get(WATCHDOG_PID)
    if not value:
        return None
    if pid and pid != str(os.getpid()):  # meant for another process (e.g. our parent shell)
        return None
    try:
        usec = int(value)
    except ValueError:
        log.warning("ignoring %s=%r: not a number of microseconds", WATCHDOG_USEC, value)
        return None
    return usec if usec > 0 else None
