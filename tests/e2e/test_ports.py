"""`mididuet ports` and port-name errors, through a real JACK server."""

from __future__ import annotations

import pytest

from tests.helpers.jack import DaemonProcess, JackServer, Monitor, Player

pytestmark = pytest.mark.jack


def test_ports_lists_the_test_clients_with_the_api(jack_server: JackServer, player: Player,
                                                    monitor: Monitor) -> None:
    proc = DaemonProcess(["--api", "jack"], jack_server.env, command="ports")
    assert proc.wait(timeout=10) == 0
    out = proc.process.stdout.read() if proc.process.stdout else ""
    assert "MIDI API: jack" in out
    inputs, outputs = out.split("outputs")
    # The player's output is something mididuet can read from; the monitor's input one it can play to.
    assert player.name in inputs and player.name not in outputs
    assert monitor.name in outputs and monitor.name not in inputs


def test_ports_uses_the_api_named_in_mido_backend(jack_server: JackServer, player: Player) -> None:
    # No --api: MIDO_BACKEND (set by the fixture's environment) selects JACK.
    proc = DaemonProcess([], jack_server.env, command="ports")
    assert proc.wait(timeout=10) == 0
    assert "MIDI API: jack" in (proc.process.stdout.read() if proc.process.stdout else "")


def test_unknown_port_name_lists_the_ports_and_exits_2(start_daemon, player: Player, monitor: Monitor) -> None:
    daemon = start_daemon("--in", "no such keyboard", "--out", monitor.name, ports=False, ready=False)
    assert daemon.wait(timeout=10) == 2
    assert "no input port matches 'no such keyboard'" in daemon.stderr
    assert player.name in daemon.stderr  # the ports that do exist are listed
    assert "Traceback" not in daemon.stderr


def test_ambiguous_port_name_is_refused(start_daemon, player: Player, monitor: Monitor) -> None:
    # A second monitor whose name extends the first: the first's client name is now a
    # substring of two output ports.
    other = Monitor(client=monitor.name.split(":")[0] + "-b")
    try:
        daemon = start_daemon("--in", player.name, "--out", monitor.name.split(":")[0], ports=False, ready=False)
        assert daemon.wait(timeout=10) == 2
        assert "ambiguous" in daemon.stderr
        assert monitor.name in daemon.stderr and other.name in daemon.stderr
    finally:
        other.close()


def test_regex_port_names_select_exactly(start_daemon, player: Player, monitor: Monitor) -> None:
    client = monitor.name.split(":")[0]
    daemon = start_daemon("--in", f"re:^{player.name}$", "--out", f"re:^{client}:in$", ports=False)
    assert monitor.name in daemon.wait_for_line("ready")


def test_no_port_names_open_virtual_ports(start_daemon, jack_server: JackServer) -> None:
    daemon = start_daemon(ports=False)
    line = daemon.wait_for_line("ready")
    assert "mididuet in" in line and "mididuet out" in line
    listing = DaemonProcess(["--api", "jack"], jack_server.env, command="ports")
    assert listing.wait(timeout=10) == 0
    out = listing.process.stdout.read() if listing.process.stdout else ""
    inputs, outputs = out.split("outputs")
    # Our virtual input is a port others play to; our virtual output one they read from.
    assert "mididuet out" in inputs and "mididuet in" in outputs
