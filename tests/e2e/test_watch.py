"""The control socket of a real ``mididuet run`` through JACK, ``mididuet status``, and
``mididuet watch`` in a real terminal (tmux), steering what is heard on the MIDI output."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import mido
import pytest

from mididuet.daemon.engine.settings import EngineSettings
from tests.helpers.control import LineClient
from tests.helpers.jack import REPO, DaemonProcess, JackServer, Monitor, Player, hanging, poll, quiet_for
from tests.reliability.test_flood import LATENESS_MAX_MS, LATENESS_P50_MS, RATE, parse_stats

pytestmark = pytest.mark.jack

CC = EngineSettings()
START = {"mode": "duet", "temperature": 1.0, "mute": False}  # more controls may follow these


def connect(daemon: DaemonProcess) -> LineClient:
    assert daemon.control is not None
    assert poll(daemon.control.exists, 5), daemon.stderr
    return LineClient(daemon.control)


def collect(client: LineClient, until, timeout: float = 3.0) -> list[dict]:
    """Read events (into ``client.events``) until ``until(events)`` holds."""
    def look() -> bool:
        client.request("controls")  # a round trip: the events sent before its reply are in
        return bool(until(client.events))
    assert poll(look, timeout, 0.05), client.events
    return client.events


def test_the_protocol_against_a_running_daemon(start_daemon, player: Player, monitor: Monitor) -> None:
    daemon = start_daemon("--phrase-gap", "300", "--answer-tokens", "3", "--bpm", "300")
    client = connect(daemon)
    status = client.request("status")["status"]
    assert status["controls"].items() >= START.items()
    assert status["pid"] == daemon.process.pid and status["model"]["name"] == "tiny.onnx"
    assert [(p["kind"], p["state"]) for p in status["ports"]] == [("output", "playing"), ("input", "playing")]
    assert status["pulse"] == {"source": "bpm", "bpm": 300.0}
    assert client.request("subscribe")["status"]["controls"]["mode"] == "duet"

    # A phrase and its answer, as events.
    player.play([60, 64, 67])
    assert poll(lambda: len(monitor.note_ons()) >= 3, 5)
    assert quiet_for(monitor, 0.4, 5)
    events = collect(client, lambda events: len([e for e in events if e["event"] == "played"]) >= 3)
    heard = [(e["note"], e["on"]) for e in events if e["event"] == "note" and e["side"] == "in"]
    assert heard == [(60, True), (60, False), (64, True), (64, False), (67, True), (67, False)]
    out_on = [e for e in events if e["event"] == "note" and e["side"] == "out" and e["on"]]
    assert [e["note"] for e in out_on] == [m.note for _, m in monitor.note_ons()]
    assert all(e["velocity"] > 0 and isinstance(e["t"], int) for e in out_on)
    played = [e["token"] for e in events if e["event"] == "played"]
    decided = [e["token"] for e in events if e["event"] == "decided"]
    assert len(played) == 3 and set(played) <= set(decided)

    # Bad values change nothing; good ones go through the engine and are reported.
    assert client.request("set", name="temperature", value=50)["error"] == "bad-value"
    assert client.request("set", name="mode", value="loud")["error"] == "bad-value"
    assert client.request("status")["status"]["controls"] == status["controls"]
    assert client.request("set", name="temperature", value=0.5) == {"id": client.ids, "ok": True,
                                                                     "name": "temperature", "value": 0.5}
    # Solo plays with nobody playing; mute silences it; panic is answered.
    since = time.monotonic_ns()
    assert client.request("set", name="mode", value="solo")["ok"]
    assert poll(lambda: len(monitor.note_ons(since=since)) >= 3, 5)
    assert client.request("set", name="mute", value=True)["value"] is True
    assert quiet_for(monitor, 0.6, 5)
    muted_at = time.monotonic_ns()
    time.sleep(0.5)
    assert not monitor.note_ons(since=muted_at)
    assert not hanging(monitor.messages)
    assert client.request("panic")["ok"]
    # A CC from the keyboard is reported the same way.
    player.send(mido.Message("control_change", control=CC.cc_mode, value=0))
    collect(client, lambda events: any(e["event"] == "changed" and e["value"] == "duet" for e in events))
    changes = [(e["name"], e["value"]) for e in events if e["event"] == "changed"]
    assert changes == [("temperature", 0.5), ("mode", "solo"), ("mute", True), ("panic", True), ("mode", "duet")]
    client.close()
    assert daemon.stop() == 0
    assert "Traceback" not in daemon.stderr
    assert not daemon.control.exists(), "the socket is removed at exit"


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mididuet.daemon", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=REPO, timeout=20, check=False)


def test_status_and_watch_without_a_daemon_say_so_in_one_line(tmp_path: Path) -> None:
    env = {"XDG_RUNTIME_DIR": str(tmp_path)}
    for command in ("status", "watch"):
        done = run_cli(command, env=env)
        assert done.returncode == 2, done
        assert done.stdout == "" and "Traceback" not in done.stderr
        (line,) = done.stderr.splitlines()
        assert line.startswith("mididuet: error: no mididuet is running here") and "mididuet run" in line, line
        assert str(tmp_path / "mididuet" / "control.sock") in line


def test_status_prints_a_summary_and_json(start_daemon) -> None:
    daemon = start_daemon("--mode", "solo", "--bpm", "400")
    assert daemon.control is not None and poll(daemon.control.exists, 5)
    time.sleep(0.8)  # a few notes, and a first stats history
    done = run_cli("status", "--control", str(daemon.control))
    assert done.returncode == 0, done
    assert "mode solo, temperature 1.00, not muted, playing" in done.stdout
    assert re.search(r"last 5 s: decision p50 [\d.]+ p99 [\d.]+ ms, lateness p50", done.stdout), done.stdout
    as_json = json.loads(run_cli("status", "--json", "--control", str(daemon.control)).stdout)
    assert as_json["controls"]["mode"] == "solo" and as_json["counts"]["notes_out"] > 0
    assert as_json["control"]["path"] == str(daemon.control)


def test_a_second_daemon_says_the_socket_is_taken_and_a_killed_ones_is_replaced(start_daemon,
                                                                               tmp_path: Path) -> None:
    path = tmp_path / "ctl" / "control.sock"
    path.parent.mkdir(mode=0o700)
    first = start_daemon("--control", str(path))
    second = start_daemon("--control", str(path))
    second.wait_for_line(f"{path} is in use by another mididuet (pid {first.process.pid})")
    assert "plays but cannot be watched" in second.stderr and second.process.poll() is None
    first.process.kill()  # leaves its socket behind
    first.wait()
    assert path.exists()
    third = start_daemon("--control", str(path))
    client = LineClient(path)
    assert client.request("status")["status"]["pid"] == third.process.pid
    client.close()


# --- a client that never reads, under a flood -----------------------------------------------------

@pytest.fixture
def flood_sender(jack_server: JackServer) -> Iterator[tuple[subprocess.Popen[str], str]]:
    client = f"mdtest-flood-{os.urandom(3).hex()}"
    sender = subprocess.Popen([sys.executable, "-m", "tests.reliability.test_flood", "--send", client,
                               "--seconds", "8", "--rate", str(RATE)], cwd=REPO,
                              env={**os.environ, **jack_server.env}, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert sender.stdout is not None and sender.stdout.readline().strip() == "open"
    yield sender, f"{client}:out"
    if sender.poll() is None:
        sender.kill()
    sender.wait()


def test_a_stuck_client_is_dropped_and_no_note_is_late(start_daemon, monitor: Monitor, flood_sender) -> None:
    sender, flood_port = flood_sender
    daemon = start_daemon("--in", flood_port, "--mode", "jam", "--bpm", "400", "--stats", "600")
    stuck = connect(daemon)
    stuck.send("subscribe")  # and never reads
    healthy = connect(daemon)
    healthy.send("subscribe")
    received: list[float] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                if healthy.read(0.2) is not None:
                    received.append(time.monotonic())
            except TimeoutError:
                pass

    reader = threading.Thread(target=read)
    reader.start()
    try:
        assert sender.stdin is not None
        sender.stdin.write("go\n")
        sender.stdin.flush()
        line = daemon.wait_for_line("dropped: it left", timeout=12)
        dropped_at = time.monotonic()
        assert "the daemon never waits for a client" in line
        assert stuck.closed(), "the stuck client's connection is closed"
        sender.communicate(timeout=20)
        assert quiet_for(monitor, 0.4, 5)
    finally:
        stop.set()
        reader.join()
    assert any(t > dropped_at + 0.5 for t in received), "the healthy client is served after the drop"
    assert daemon.stop() == 0
    figures = parse_stats(daemon.wait_for_line("stats at exit"))
    # As the flood test holds the daemon without a watcher (tests/reliability/test_flood.py).
    assert figures["l50"] <= LATENESS_P50_MS and figures["lmax"] <= LATENESS_MAX_MS, figures
    assert not hanging(monitor.messages)
    assert "Traceback" not in daemon.stderr


# --- mididuet watch in a real terminal ---------------------------------------------------------------

class Tmux:
    """A tmux server of our own (-L) with one window running a command."""

    def __init__(self, command: str, width: int = 100, height: int = 30) -> None:
        self.socket = f"mdtest-{os.getpid()}-{os.urandom(3).hex()}"
        # COLUMNS and LINES from pytest's environment would fix the app's size (shutil reads them).
        self.tmux("new-session", "-d", "-s", "watch", "-x", str(width), "-y", str(height),
                  f"unset COLUMNS LINES; {command}")

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=True,
                              timeout=10).stdout

    def screen(self, escapes: bool = False) -> str:
        return self.tmux("capture-pane", "-p", *(["-e"] if escapes else []), "-t", "watch")

    def wait_for(self, text: str, timeout: float = 10.0) -> str:
        found = poll(lambda: text in self.screen(), timeout, 0.1)
        assert found, f"{text!r} never showed; the screen:\n{self.screen()}"
        return self.screen()

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "watch", *keys)

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, check=False)


BLOCK = re.compile(r"\x1b\[([0-9;]*)m([▀▄]+)")


def block_colours(screen: str) -> set[str]:
    """The foreground colours of the roll's note cells (the SGR before each run of blocks)."""
    colours = set()
    for params, _ in BLOCK.findall(screen):
        fields = params.split(";")
        for i, value in enumerate(fields):
            if value == "38":
                colours.add(";".join(fields[i:i + 5 if fields[i + 1] == "2" else i + 3]))
    return colours


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed (apt-get install tmux)")
def test_watch_in_a_terminal_shows_the_phrase_and_the_answer_and_a_key_switches_the_mode(
        start_daemon, player: Player, monitor: Monitor, tmp_path: Path) -> None:
    daemon = start_daemon("--phrase-gap", "300", "--answer-tokens", "4", "--bpm", "300")
    exit_file = tmp_path / "exit"
    command = (f"env COLORTERM=truecolor {sys.executable} -m mididuet.daemon watch --control {daemon.control}; "
               f"echo $? > {exit_file}; sleep 30")
    term = Tmux(f"cd {REPO} && {command}")
    try:
        term.wait_for("mode  duet ")
        player.play([60, 64, 67, 72], velocity=100)
        assert poll(lambda: len(monitor.note_ons()) >= 4, 5)
        # the answer: 4 tokens, some of them chords
        assert poll(lambda: re.search(r"notes in 4 out ([4-9]|\d\d)", term.screen()), 10, 0.1), term.screen()
        colours = poll(lambda: len(block_colours(term.screen(escapes=True))) >= 2 and
                       block_colours(term.screen(escapes=True)), 3, 0.1)
        assert colours and len(colours) >= 2, f"the player and mididuet in two colours:\n{term.screen(True)}"
        assert "you" in term.screen() and "mididuet" in term.screen()
        assert quiet_for(monitor, 0.5, 5)

        since = time.monotonic_ns()
        term.keys("s")  # solo: it plays with nobody playing
        term.wait_for("mode  solo ")
        assert poll(lambda: len(monitor.note_ons(since=since)) >= 3, 5), "solo plays after the key"
        term.keys("space")
        term.wait_for("MUTED")
        assert quiet_for(monitor, 0.5, 5)

        term.tmux("resize-window", "-t", "watch", "-x", "70", "-y", "20")
        screen = term.wait_for("mode  solo ")
        assert max(len(line) for line in screen.splitlines()) <= 70
        term.keys("q")
        assert poll(exit_file.exists, 5), term.screen()
        assert exit_file.read_text().strip() == "0"
    finally:
        term.kill()
    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.wait() == 0
