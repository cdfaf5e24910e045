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

from tests.helpers.jack import JackServer, jack_available, require, terminate
from tests.helpers.xruns import XrunStamper, near

MS = 1_000_000  # ns
STALL_S = 0.05  # about ten periods of 5.3 ms
STALLED_CLIENT = """
import sys, mido
port = mido.open_input("in", client_name="stalled")
print("ready", flush=True)
sys.stdin.read()
"""


@pytest.mark.jack
def test_an_xrun_is_stamped_when_a_client_stalls_the_graph() -> None:
    require(jack_available())
    server = JackServer(period=256)
    server.start()
    try:
        stalled = subprocess.Popen([sys.executable, "-c", STALLED_CLIENT], env={**os.environ, **server.env},
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert stalled.stdout is not None and stalled.stdout.readline().strip() == "ready"
            with XrunStamper(server.env) as stamper:
                time.sleep(0.3)  # the graph settles after the clients join
                stopped_at = time.monotonic_ns()
                os.kill(stalled.pid, signal.SIGSTOP)
                time.sleep(STALL_S)
                os.kill(stalled.pid, signal.SIGCONT)
                time.sleep(0.1)  # the server's notifications reach the stamper
                stamps = stamper.stop()
        finally:
            os.kill(stalled.pid, signal.SIGCONT)
            terminate(stalled)
    finally:
        server.stop()
    # During the stall and a few periods after it: not a spontaneous xrun elsewhere in the run.
    during = [t for t in stamps if stopped_at <= t <= stopped_at + round(STALL_S * 1e9) + 20 * MS]
    assert during, f"no xrun stamped while a client was stopped for {STALL_S * 1000:g} ms ({len(stamps)} in all)"
    assert stamps == sorted(stamps)


def test_near_is_within_the_bound_on_either_side() -> None:
    stamps = [10, 20, 30]
    assert near(stamps, 25, 5) and near(stamps, 15, 5) and near(stamps, 0, 10) and near(stamps, 40, 10)
    assert not near(stamps, 25, 4) and not near(stamps, 41, 10) and not near(stamps, -1, 10)
    assert not near([], 0, 100)
