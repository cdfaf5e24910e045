"""sd_notify: addresses, the watchdog environment, and datagrams through a real socket."""

from __future__ import annotations

import os
from pathlib import Path

from mididuet.daemon.service.notify import Notifier, socket_address, watchdog_interval_usec
from tests.helpers.notify_listener import NotifyListener


def test_abstract_addresses_start_with_a_nul_byte() -> None:
    assert socket_address("@/org/freedesktop/systemd1/notify/123") == "\0/org/freedesktop/systemd1/notify/123"
    assert socket_address("/run/user/1000/systemd/notify") == "/run/user/1000/systemd/notify"


def test_no_notify_socket_means_no_notifier() -> None:
    assert Notifier.from_environ({}) is None
    assert Notifier.from_environ({"NOTIFY_SOCKET": ""}) is None


def test_watchdog_applies_to_this_process_only() -> None:
    me = str(os.getpid())
    assert watchdog_interval_usec({"WATCHDOG_USEC": "10000000"}) == 10_000_000
    assert watchdog_interval_usec({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": me}) == 10_000_000
    assert watchdog_interval_usec({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval_usec({"WATCHDOG_USEC": "soon"}) is None
    assert watchdog_interval_usec({}) is None
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "4000000"})
    assert notifier is not None and notifier.watchdog_interval_s == 2.0  # half the timeout
    notifier.close()


def test_messages_reach_a_real_socket_abstract_and_path(tmp_path: Path) -> None:
    for listener in (NotifyListener(), NotifyListener(tmp_path / "notify")):
        try:
            notifier = Notifier.from_environ({"NOTIFY_SOCKET": listener.env_value})
            assert notifier is not None
            assert notifier.ready("playing: in 'a', out 'b'")
            assert notifier.watchdog() and notifier.stopping()
            assert listener.wait_for("STOPPING=1", 2)
            assert [fields for _, fields in listener.messages] == [
                ["READY=1", "STATUS=playing: in 'a', out 'b'"], ["WATCHDOG=1"], ["STOPPING=1", "STATUS=stopping"]]
            notifier.close()
        finally:
            listener.close()


def test_a_vanished_supervisor_never_raises(tmp_path: Path) -> None:
    notifier = Notifier(str(tmp_path / "nobody-listens"))
    assert notifier.status("still playing") is False
    notifier.close()
    assert notifier.watchdog() is False
