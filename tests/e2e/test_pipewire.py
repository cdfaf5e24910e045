"""mididuet on PipeWire's JACK: the duet, and what it says when it cannot get there.

A private headless PipeWire (``pipewire_server``: its own runtime directory, the suite's
quantum) and ``pw-jack -p QUANTUM mididuet run --api jack``, with a python-rtmidi built
against the system's libjack (``make rtmidi-system``): the PyPI wheel bundles its own
libjack, which ignores ``pw-jack``. The keyboard and the monitor are in a child process
(:mod:`tests.helpers.remote`): this process's libjack is the session jackd's.

The reconnect test (PipeWire restarted) is tests/reliability/test_faults.py's, run on both
servers; the JACK watch's own tests are in tests/daemon/ports/test_jackwatch.py.
"""

from __future__ import annotations

import os
import sys

import pytest

from tests.e2e import test_duet as duet_tests
from tests.helpers.jack import DaemonProcess, hanging, poll
from tests.helpers.pipewire import PipeWireServer
from tests.helpers.remote import RemoteClients

pytestmark = pytest.mark.jack


def test_the_duet_runs_on_pipewire_and_nothing_hangs_after_sigterm(pw_start_daemon, pw_clients: RemoteClients,
                                                                   pipewire_server: PipeWireServer) -> None:
    assert pipewire_server.buffer_size() == pipewire_server.quantum
    started: list[DaemonProcess] = []

    def start(*flags: str, **options: object) -> DaemonProcess:
        started.append(pw_start_daemon(*flags, **options))
        return started[-1]

    # The JACK suite's own duet test, unchanged, on PipeWire's clients.
    duet_tests.test_duet_answers_after_the_gap(start, pw_clients.player, pw_clients.monitor)
    [daemon] = started
    assert "watching the JACK server through PipeWire's libjack" in daemon.stderr, daemon.stderr
    pw_clients.player.play([60, 64, 67])
    assert poll(lambda: hanging(pw_clients.monitor.messages), 5), "the second answer is sounding"
    assert daemon.stop() == 0, daemon.stderr
    assert poll(lambda: not hanging(pw_clients.monitor.messages), 1), hanging(pw_clients.monitor.messages)
    assert "Traceback" not in daemon.stderr


def failed_run(env: dict[str, str], wrapper: list[str] | None = None) -> DaemonProcess:
    # No jackd may answer instead (the session's is named in this process's environment).
    env = {**env, "JACK_DEFAULT_SERVER": f"mdtest-none-{os.getpid()}"}
    daemon = DaemonProcess(["--api", "jack", "--in", "x", "--out", "y"], env, wrapper=wrapper or [])
    assert daemon.wait(timeout=20) == 2, daemon.stderr
    assert "Traceback" not in daemon.stderr, daemon.stderr
    return daemon


def test_the_wheels_bundled_libjack_under_pw_jack_says_how_to_rebuild_it(pipewire_server: PipeWireServer) -> None:
    """This process's own python-rtmidi (the PyPI wheel): ``pw-jack`` cannot redirect it."""
    env = {key: value for key, value in pipewire_server.base_env.items() if key != "PYTHONPATH"}
    daemon = failed_run(env, pipewire_server.pw_jack)
    line = daemon.wait_for_line("cannot reach a JACK server")
    assert f"PipeWire runs here ({pipewire_server.socket})" in line, line
    assert "python-rtmidi calls its own bundled libjack" in line and "python_rtmidi" in line, line
    assert (f"{sys.executable} -m pip install --force-reinstall --no-deps --no-binary python-rtmidi "
            "python-rtmidi==") in line, line
    assert "libjack-jackd2-dev libasound2-dev pkg-config" in line and "pw-jack mididuet run --api jack" in line


def test_the_system_libjack_without_pw_jack_says_to_use_pw_jack(pipewire_server: PipeWireServer) -> None:
    daemon = failed_run(pipewire_server.base_env)
    line = daemon.wait_for_line("cannot reach a JACK server")
    assert f"PipeWire runs here ({pipewire_server.socket})" in line, line
    assert "python-rtmidi calls the system's libjack" in line, line
    assert line.endswith("start mididuet through PipeWire's JACK: `pw-jack mididuet run --api jack`"), line
    assert "pip install" not in line, "this python-rtmidi needs no rebuild"
