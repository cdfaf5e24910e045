"""Faults through real processes and real JACK: the server dies, signals mid-answer.

Already covered elsewhere (not repeated here): the synth's port leaving mid-answer and
coming back, the keyboard's port leaving and coming back, a damaged model and SIGHUP
(tests/e2e/test_service.py).

Two faults need no ports and are tested on the loop's idle work directly
(tests/daemon/live/test_chores.py): a disk error while the recording is rewritten, and
the rate-limited overload warning.

- **The JACK server stopped and started again** while mididuet plays, jackd and PipeWire:
  rtmidi's clients cannot outlive their server, so mididuet exits with status 3
  (``EXIT_SERVER_GONE``), says why, writes its recording, prints no traceback; systemd's
  ``Restart=on-failure`` starts it again. A private server per test (the session's own
  must not die), with the test's keyboard and monitor in a child process (``--probe``):
  this process's libjack stays with the session's server.
- **SIGTERM, SIGINT, SIGHUP in the middle of an answer**: the monitoring client has seen
  a note-off for every note-on; SIGTERM and SIGINT exit 0, SIGHUP reloads (releasing
  the answer's notes first) and the daemon answers the next phrase.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import mido
import pytest

from mididuet.daemon.live.runner import EXIT_SERVER_GONE
from tests.helpers.jack import (
    REPO,
    DaemonProcess,
    JackServer,
    Monitor,
    Player,
    hanging,
    jack_available,
    onset_groups,
    poll,
    quiet_for,
    require,
)
from tests.helpers.pipewire import PipeWireServer

pytestmark = pytest.mark.jack

ANSWER = ("--phrase-gap", "150", "--bpm", "240", "--answer-tokens", "16")  # ~4 s of answer


def probe(client: str) -> int:
    """Child process: a keyboard and a monitor on the server JACK_DEFAULT_SERVER names.

    Prints ``open``; on ``play`` plays three notes; on ``answered`` waits for the
    answer's first note; on ``report`` prints what the monitor saw as JSON; exits on ``quit``.
    """
    monitor = Monitor(client=f"{client}-monitor")
    player = Player(client=f"{client}-player")
    print("open", flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "play":
            player.play([60, 62, 64])
            print("played", flush=True)
        elif command == "answered":
            print("answered" if poll(monitor.note_ons, 5) else "silent", flush=True)
        elif command == "report":
            poll(monitor.note_ons, 5)  # the answer starts after the phrase gap
            quiet_for(monitor, 0.4, 10)
            print(json.dumps({"note_ons": len(monitor.note_ons()),
                              "hanging": len(hanging(monitor.messages))}), flush=True)
        elif command == "quit":
            break
    player.close()
    monitor.close()
    return 0


class Probe:
    """The ``probe`` child, driven line by line."""

    def __init__(self, server: JackServer | PipeWireServer, client: str) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "tests.reliability.test_faults", "--probe", client],
                                        cwd=REPO, env={**os.environ, **server.env}, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        self.player = f"{client}-player:out"
        self.monitor = f"{client}-monitor:in"
        assert self.ask("") == "open"

    def ask(self, command: str) -> str:
        assert self.process.stdin is not None and self.process.stdout is not None
        if command:
            self.process.stdin.write(command + "\n")
            self.process.stdin.flush()
        return self.process.stdout.readline().strip()

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.ask("quit")
                self.process.wait(timeout=5)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()


@pytest.fixture(params=["jackd", "pipewire"])
def private_server(request: pytest.FixtureRequest) -> Iterator[JackServer | PipeWireServer]:
    """A server of the test's own, not yet started: jackd, or PipeWire (its JACK, with a
    python-rtmidi built against the system's libjack, as tests/e2e/test_pipewire.py)."""
    server: JackServer | PipeWireServer
    if request.param == "jackd":
        require(jack_available())
        server = JackServer()
    else:
        server = PipeWireServer(rtmidi=request.getfixturevalue("rtmidi_for_pipewire"))
    yield server
    server.stop()
    if isinstance(server, PipeWireServer):
        server.close()


def test_the_jack_server_stops_mididuet_exits_3_and_a_new_one_answers_after_the_restart(
        private_server: JackServer | PipeWireServer, tiny_model: Path, tmp_path: Path) -> None:
    server = private_server
    server.start()
    probes: list[Probe] = []
    daemons: list[DaemonProcess] = []
    try:
        first = Probe(server, f"mdtest-fault-{os.urandom(3).hex()}")
        probes.append(first)
        args = ["--model", str(tiny_model), "--api", "jack", "--retry", "0.2", *ANSWER]
        daemon = DaemonProcess([*args, "--in", first.player, "--out", first.monitor, "--record", str(tmp_path)],
                               server.env)
        daemons.append(daemon)
        daemon.wait_ready()
        assert first.ask("play") == "played"
        assert first.ask("answered") == "answered", daemon.stderr  # the answer is under way
        server.stop()  # the monitoring client dies with it: the daemon's exit is what we check
        assert daemon.wait(timeout=5) == EXIT_SERVER_GONE, daemon.stderr
        assert "the JACK server went away" in daemon.stderr
        assert "Traceback" not in daemon.stderr, daemon.stderr
        # What it could release, it did: the recording is complete and has the answer's start.
        recorded = mido.MidiFile(next(tmp_path.glob("mididuet-*.mid")))
        assert [m for m in recorded.tracks[1] if m.type == "note_on" and m.velocity > 0]
        first.close()

        server.start()  # the same name, as a user restarting JACK
        second = Probe(server, f"mdtest-fault-{os.urandom(3).hex()}")
        probes.append(second)
        daemon = DaemonProcess([*args, "--in", second.player, "--out", second.monitor], server.env)
        daemons.append(daemon)
        daemon.wait_ready()
        assert second.ask("play") == "played"
        report = json.loads(second.ask("report"))
        assert report["note_ons"] >= 16 and report["hanging"] == 0, (report, daemon.stderr)
        assert daemon.stop() == 0
    finally:
        for p in probes:
            p.close()
        for d in daemons:
            d.stop()
        server.stop()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_mid_answer_exits_0_and_every_note_is_released(start_daemon, player: Player,
                                                                       monitor: Monitor, sig: int) -> None:
    daemon = start_daemon(*ANSWER)
    player.play([60, 62, 64])
    assert poll(lambda: len(onset_groups(monitor.note_ons())) >= 3, 5), daemon.stderr
    # Between two of the answer's notes nothing sounds for 25 ms; a busy machine can wake
    # the test just there, so wait for the next one.
    assert poll(lambda: hanging(monitor.messages), 1), "a note of the answer is sounding when the signal comes"
    assert daemon.stop(sig) == 0, daemon.stderr
    assert poll(lambda: not hanging(monitor.messages), 1), hanging(monitor.messages)
    assert "Traceback" not in daemon.stderr
    assert len(onset_groups(monitor.note_ons())) < 16, "the answer was cut, not played out"


def test_sighup_mid_answer_releases_the_answer_and_keeps_answering(start_daemon, player: Player,
                                                                   monitor: Monitor) -> None:
    daemon = start_daemon(*ANSWER)
    player.play([60, 62, 64])
    assert poll(lambda: len(onset_groups(monitor.note_ons())) >= 3, 5), daemon.stderr
    assert poll(lambda: hanging(monitor.messages), 1), "a note of the answer is sounding when the signal comes"
    daemon.process.send_signal(signal.SIGHUP)
    daemon.wait_for_line("reloaded", timeout=5)
    # The reload ended the answer: its notes are released and no more come.
    assert poll(lambda: not hanging(monitor.messages), 1), hanging(monitor.messages)
    assert quiet_for(monitor, 0.6, 3)
    assert len(onset_groups(monitor.note_ons())) < 16
    monitor.clear()
    player.play([65, 67, 69])
    assert poll(lambda: len(onset_groups(monitor.note_ons())) >= 2, 5), daemon.stderr
    assert daemon.stop() == 0
    assert poll(lambda: not hanging(monitor.messages), 1)
    assert "Traceback" not in daemon.stderr


def main() -> int:
    parser = argparse.ArgumentParser(description="a keyboard and a monitor on another JACK server")
    parser.add_argument("--probe", metavar="CLIENT", required=True)
    return probe(parser.parse_args().probe)


if __name__ == "__main__":
    sys.exit(main())
