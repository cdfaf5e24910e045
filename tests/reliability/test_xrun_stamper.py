"""The benchmark's xrun stamper (``tests/helpers/xruns.py``) sees a real xrun when it happens.

The xrun is caused for real on a private server of its own, so the session's server never
misses a cycle: a client with a process callback (python-rtmidi's input) is stopped with
SIGSTOP for a few periods, and the server's graph cannot finish while it sleeps.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers.jack import JackServer, jack_available, require
from tests.helpers.xruns import XrunStamper, near

pytestmark = pytest.mark.jack

MS = 1_000_000  # ns
STALLED_CLIENT = """
import sys, mido
port = mido.open_input("in", client_name="stalled")
print("ready", flush=True)
sys.stdin.read()
"""


def test_an_xrun_is_stamped_when_a_client_stalls_the_graph() -> None:
    require(jack_available())
    server = JackServer(period=256)
    server.start()
    stalled = None
    try:
        env = {**os.environ, **server.env}
        stalled = subprocess.Popen([sys.executable, "-c", STALLED_CLIENT], env=env, stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, text=True)
        assert stalled.stdout is not None and stalled.stdout.readline().strip() == "ready"
        stamper = XrunStamper(server.env)
        time.sleep(0.3)  # the graph settles after the clients join
        stopped_at = time.monotonic_ns()
        os.kill(stalled.pid, signal.SIGSTOP)
        time.sleep(0.05)  # about ten periods of 5.3 ms
        os.kill(stalled.pid, signal.SIGCONT)
        time.sleep(0.3)
        stamps = stamper.stop()
    finally:
        if stalled is not None:
            os.kill(stalled.pid, signal.SIGCONT)
            stalled.communicate(input="", timeout=10)
        server.stop()
    during = [t for t in stamps if stopped_at <= t <= stopped_at + 300 * MS]
    assert during, f"no xrun stamped while a client was stopped for 50 ms ({len(stamps)} in all)"
    assert stamps == sorted(stamps)


def test_near_is_within_the_bound_on_either_side() -> None:
    stamps = [10, 20, 30]
    assert near(stamps, 25, 5) and near(stamps, 15, 5) and near(stamps, 0, 10) and near(stamps, 40, 10)
    assert not near(stamps, 25, 4) and not near(stamps, 41, 10) and not near(stamps, -1, 10)
    assert not near([], 0, 100)
