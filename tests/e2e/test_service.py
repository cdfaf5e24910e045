"""mididuet as a service, through real JACK ports and a real notify socket.

Readiness, STATUS, watchdog and STOPPING through a datagram socket the test binds
where systemd would; SIGHUP with a good and with a damaged model; a synth and a
keyboard that close their ports and come back; a port missing at start; the config
file's precedence; and proof that the daemon holds no network socket.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import mido
import pytest

from tests.helpers.bundles import make_bundle
from tests.helpers.control import LineClient
from tests.helpers.jack import DaemonProcess, JackServer, Monitor, Player, hanging, onset_groups, poll, quiet_for
from tests.helpers.notify_listener import NotifyListener

pytestmark = pytest.mark.jack

RETRY = "0.2"  # seconds between looks at the port list: short, so the tests stay short


@pytest.fixture
def home(tmp_path: Path) -> Path:
    config_home = tmp_path / "config"
    (config_home / "mididuet").mkdir(parents=True)
    return config_home


@pytest.fixture
def notify_socket() -> Iterator[NotifyListener]:
    listener = NotifyListener()
    yield listener
    listener.close()


Launch = Callable[..., DaemonProcess]


@pytest.fixture
def launch(jack_server: JackServer, tiny_model: Path, home: Path) -> Iterator[Launch]:
    """``launch(*flags, env={...})``: ``mididuet run`` with the tiny model and an empty
    config home (so no real user config is read), not waited on."""
    started: list[DaemonProcess] = []

    def start(*flags: str, env: dict[str, str] | None = None, model: Path | None = tiny_model) -> DaemonProcess:
        args = ["--api", "jack", "--retry", RETRY, *flags]
        if model is not None:
            args = ["--model", str(model), *args]
        daemon = DaemonProcess(args, {**jack_server.env, "XDG_CONFIG_HOME": str(home), **(env or {})})
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()


def unique(prefix: str) -> str:
    return f"{prefix}-{os.urandom(3).hex()}"


@pytest.mark.parametrize("where", ["abstract", "path"])
def test_ready_status_watchdog_and_stopping_reach_the_notify_socket(launch: Launch, player: Player,
                                                                     monitor: Monitor, tmp_path: Path,
                                                                     where: str) -> None:
    listener = NotifyListener(tmp_path / "notify" if where == "path" else None)
    try:
        daemon = launch("--in", player.name, "--out", monitor.name,
                        env={"NOTIFY_SOCKET": listener.env_value, "WATCHDOG_USEC": "200000"})
        assert listener.wait_for("READY=1"), daemon.stderr
        status = listener.wait_for_status("playing")
        assert f"in {player.name!r}" in status and f"out {monitor.name!r}" in status, status
        assert "mode duet" in status and "model tiny.onnx" in status, status
        # WATCHDOG_USEC=200 ms: a ping every 100 ms.
        assert poll(lambda: listener.fields().count("WATCHDOG=1") >= 3, 2), listener.fields()
        assert daemon.stop() == 0
        assert listener.wait_for("STOPPING=1", 2)
    finally:
        listener.close()


def test_under_systemd_a_missing_synth_is_waited_for(launch: Launch, player: Player,
                                                      notify_socket: NotifyListener) -> None:
    client = unique("mdtest-late-synth")
    daemon = launch("--in", player.name, "--out", client, "--phrase-gap", "150", "--bpm", "400",
                    "--answer-tokens", "3", env={"NOTIFY_SOCKET": notify_socket.env_value})
    # Ready at once (the model is loaded), and STATUS says what is missing.
    assert notify_socket.wait_for("READY=1"), daemon.stderr
    status = notify_socket.wait_for_status("waiting for ports")
    assert f"out {client!r} missing" in status, status
    daemon.wait_for_line(f"waiting for output port {client!r}")
    time.sleep(0.5)
    assert daemon.process.poll() is None, "it waits; it does not exit"
    synth = Monitor(client=client)
    try:
        daemon.wait_for_line("output port", timeout=5)
        assert "ready:" in daemon.wait_for_line("ready:", timeout=5)
        notify_socket.wait_for_status("playing", timeout=5)
        player.play([60, 62, 64])
        assert poll(lambda: len(onset_groups(synth.note_ons())) >= 3, 5), daemon.stderr
        assert daemon.stop() == 0
    finally:
        synth.close()


def test_no_wait_under_systemd_still_fails_fast(launch: Launch, player: Player,
                                                notify_socket: NotifyListener) -> None:
    daemon = launch("--in", player.name, "--out", "no such synth", "--no-wait",
                    env={"NOTIFY_SOCKET": notify_socket.env_value})
    assert daemon.wait(timeout=10) == 2
    assert "no output port matches 'no such synth'" in daemon.stderr
    assert "READY=1" not in notify_socket.fields()


def test_config_file_sets_options_and_flags_override_it(launch: Launch, player: Player, monitor: Monitor,
                                                        home: Path) -> None:
    (home / "mididuet" / "config.toml").write_text(
        f'in = "{player.name}"\nout = "{monitor.name}"\nchannel = 3\nanswer-tokens = 2\n'
        "phrase-gap = 150\nbpm = 400\n")
    daemon = launch("--channel", "5")  # the flag wins over the file's channel 3
    daemon.wait_ready()
    player.play([60, 62, 64])
    assert poll(lambda: len(onset_groups(monitor.note_ons())) >= 2, 5), daemon.stderr
    assert quiet_for(monitor, 0.4, 5)
    assert len(onset_groups(monitor.note_ons())) == 2, "answer-tokens = 2 from the file"
    assert {m.channel for _, m in monitor.note_ons()} == {4}, "channel 5 from the flag (0-based 4)"


def test_sighup_reloads_config_and_model_and_refuses_a_damaged_model(launch: Launch, player: Player,
                                                                      monitor: Monitor, home: Path,
                                                                      tmp_path: Path) -> None:
    config = home / "mididuet" / "config.toml"
    other = make_bundle(tmp_path / "other.onnx", seed=11)
    damaged = make_bundle(tmp_path / "damaged.onnx", output_width=5)

    def write_config(model: Path, answer_tokens: int) -> None:
        config.write_text(f'model = "{model}"\nin = "{player.name}"\nout = "{monitor.name}"\n'
                          f"answer-tokens = {answer_tokens}\nphrase-gap = 150\nbpm = 400\n")

    def answer_length() -> int:
        monitor.clear()
        player.play([60, 62, 64])
        assert poll(lambda: monitor.note_ons(), 5), daemon.stderr
        assert quiet_for(monitor, 0.4, 5)
        assert not hanging(monitor.messages)
        return len(onset_groups(monitor.note_ons()))

    write_config(other, 2)
    daemon = launch(model=None)
    assert "other.onnx" in daemon.wait_ready()
    assert answer_length() == 2

    # A good reload: new answer length from the file; the ports stay open (one "ready").
    write_config(make_bundle(tmp_path / "third.onnx", seed=12), 4)
    daemon.process.send_signal(signal.SIGHUP)
    assert "third.onnx" in daemon.wait_for_line("reloaded", timeout=5)
    assert answer_length() == 4

    # A damaged model: refused, logged, and the old model keeps playing.
    write_config(damaged, 1)
    daemon.process.send_signal(signal.SIGHUP)
    refused = daemon.wait_for_line("reload refused", timeout=5)
    assert "still playing third.onnx" in refused and "width 5" in refused, refused
    assert answer_length() == 4, "the old model and the old config still answer"
    assert daemon.process.poll() is None
    assert sum("ready:" in line for line in daemon.lines) == 1, "the ports were never reopened"
    assert daemon.stop() == 0


def test_the_synth_leaves_mid_answer_and_comes_back(launch: Launch, player: Player, jack_server: JackServer) -> None:
    client = unique("mdtest-synth")
    synth = Monitor(client=client)
    daemon = launch("--in", player.name, "--out", synth.name, "--phrase-gap", "150", "--bpm", "240",
                    "--answer-tokens", "16")
    daemon.wait_ready()
    player.play([60, 62, 64])
    assert poll(lambda: len(onset_groups(synth.note_ons())) >= 2, 5), daemon.stderr
    synth.close()  # in the middle of the answer, as a DAW that quits
    lost = daemon.wait_for_line("output port", timeout=3)
    assert "lost" in lost, lost
    time.sleep(0.6)  # three more looks at the port list: the loss is logged once
    assert sum(" lost " in line for line in daemon.lines) == 1, daemon.stderr
    synth = Monitor(client=client)
    try:
        assert "reconnected" in daemon.wait_for_line("back: reconnected", timeout=3)
        player.play([65, 67, 69])
        assert poll(lambda: len(onset_groups(synth.note_ons())) >= 3, 5), daemon.stderr
        assert daemon.stop() == 0
        assert poll(lambda: not hanging(synth.messages), 1), "no hanging notes on the synth that came back"
        assert daemon.process.returncode == 0
    finally:
        synth.close()


def test_the_keyboard_leaves_and_comes_back(launch: Launch, monitor: Monitor) -> None:
    client = unique("mdtest-keys")
    keys = Player(client=client)
    daemon = launch("--in", keys.name, "--out", monitor.name, "--phrase-gap", "150", "--bpm", "400",
                    "--answer-tokens", "2")
    daemon.wait_ready()
    keys.send(mido.Message("note_on", note=48, velocity=80))  # a key held down as the cable goes
    time.sleep(0.05)
    keys.close()
    assert "lost" in daemon.wait_for_line("input port", timeout=3)
    keys = Player(client=client)
    try:
        daemon.wait_for_line("back: reconnected", timeout=3)
        monitor.clear()
        keys.play([60, 62, 64])
        # The held key was forgotten: the phrase ends, and the answer comes.
        assert poll(lambda: len(onset_groups(monitor.note_ons())) >= 2, 5), daemon.stderr
        assert quiet_for(monitor, 0.3, 5) and not hanging(monitor.messages)
    finally:
        keys.close()


def socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed between listing and reading
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[len("socket:["):-1]))
    return inodes


def table_inodes(pid: int, table: str) -> set[int]:
    """Inodes in /proc/PID/net/TABLE (the process's network namespace)."""
    path = Path(f"/proc/{pid}/net/{table}")
    if not path.exists():
        return set()
    lines = path.read_text().splitlines()[1:]
    column = {"unix": 6, "netlink": 8, "packet": 8}.get(table, 9)  # tcp/udp/raw: inode is field 9
    return {int(line.split()[column]) for line in lines if len(line.split()) > column}


def test_the_daemon_holds_no_network_socket_while_it_plays(launch: Launch, player: Player,
                                                            monitor: Monitor, tmp_path: Path) -> None:
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    daemon = launch("--in", player.name, "--out", monitor.name, "--mode", "jam", "--bpm", "400",
                    env={"XDG_RUNTIME_DIR": str(runtime)})
    daemon.wait_ready()
    # A watcher connected meanwhile: the control socket and its connection are checked too.
    watcher = LineClient(runtime / "mididuet" / "control.sock")
    assert watcher.request("subscribe")["ok"]
    player.play([60, 62, 64])
    assert poll(lambda: len(monitor.note_ons()) >= 3, 5), daemon.stderr  # it is playing now
    pid = daemon.process.pid
    sockets = socket_inodes(pid)
    assert sockets, "JACK talks over AF_UNIX sockets: the check must see them"
    unix = table_inodes(pid, "unix")
    network = set().union(*(table_inodes(pid, t) for t in
                            ("tcp", "tcp6", "udp", "udp6", "raw", "raw6", "udplite", "udplite6", "packet",
                             "netlink")))
    assert not sockets & network, f"network sockets: {sockets & network}"
    assert sockets <= unix, f"sockets that are not AF_UNIX: {sockets - unix}"
    watcher.close()
