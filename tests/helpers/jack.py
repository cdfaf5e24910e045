"""Real MIDI for tests: a private JACK server, test clients, the daemon as a subprocess.

- :class:`JackServer` runs ``jackd --realtime -d dummy`` under a unique name, so parallel
  test sessions never share a server, and removes only its own files
  in /dev/shm afterwards.
- :class:`Player` is a virtual JACK output the daemon reads from (the "keyboard");
  :class:`Monitor` a virtual JACK input it plays to, which stamps every arrival with
  ``time.monotonic_ns()`` (the same clock the daemon uses; both are CLOCK_MONOTONIC).
- :class:`DaemonProcess` runs ``python -m mididuet.daemon run`` with the JACK environment and
  collects its stderr lines, so a test can wait for "ready" or for a log line.
- :class:`FluidSynth` runs the real synth as a JACK client writing what it hears to a WAV.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import mido
import pytest

from mididuet.daemon.live.runner import SWITCH_INTERVAL_S
from mididuet.daemon.music.midi import ALL_NOTES_OFF

JACK_BACKEND = "mido.backends.rtmidi/UNIX_JACK"
SOUNDFONTS = (Path("/usr/share/sounds/sf2/TimGM6mb.sf2"), Path("/usr/share/sounds/sf2/default-GM.sf2"))
REPO = Path(__file__).resolve().parents[2]  # the project root


def poll(predicate: Callable[[], Any], timeout: float, interval: float = 0.01) -> Any:
    """Call ``predicate`` until it returns something truthy or ``timeout`` seconds pass."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= end:
            return value
        time.sleep(interval)


# The suite's JACK period. 64 frames (1.3 ms) is what a musician would run, and what the
# benchmarks measure at; but on these virtual machines an idle jackd at 64 frames logged 5
# xruns in 10 s (one 0.73 ms late), and a late cycle can lose MIDI events between
# clients: the SIGHUP test lost its answer in 1-3 of 20 runs at 64 frames, 0 of 20 at 256.
# The tests check behaviour, not latency, so they run at 256 (5.3 ms) unless told otherwise.
TEST_PERIOD = int(os.environ.get("MIDIDUET_TEST_JACK_PERIOD", "256"))


def terminate(process: subprocess.Popen, timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL if ``process`` has not exited within ``timeout`` s."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class JackServer:
    """A private jackd with the dummy driver. ``start`` blocks until it is running."""

    def __init__(self, name: str | None = None, period: int = TEST_PERIOD, rate: int = 48000) -> None:
        self.name = name or f"mdtest-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.period = period
        self.rate = rate
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def period_ms(self) -> float:
        return self.period / self.rate * 1000.0

    @property
    def env(self) -> dict[str, str]:
        """What a client needs: the server's name, no auto-started server, the JACK API."""
        return {"JACK_DEFAULT_SERVER": self.name, "JACK_NO_START_SERVER": "1", "MIDO_BACKEND": JACK_BACKEND}

    def start(self, timeout: float = 10.0) -> None:
        # jackd's messages go to a file, never to a pipe nobody reads: under load it logs an
        # xrun line per late cycle, and once a pipe's 64 KB filled, jackd blocked writing
        # them and every JACK client call in the suite hung (seen in a flood-heavy run).
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the server; closed in stop()
        self.process = subprocess.Popen(
            ["jackd", "--realtime", "--name", self.name, "-d", "dummy", "-r", str(self.rate), "-p", str(self.period)],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
        )

        def running() -> bool:
            if self.process is not None and self.process.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"jackd exited: {self.log.read().decode(errors='replace')}")
            check = subprocess.run(["jack_wait", "-s", self.name, "-c"], capture_output=True, text=True,
                                   env={**os.environ, **self.env}, check=False)
            return check.stdout.strip() == "running"  # the other answer is "not running"

        if not poll(running, timeout, 0.05):
            self.stop()
            raise RuntimeError(f"jackd {self.name} did not start within {timeout} s")

    def stop(self) -> None:
        if self.process is None:
            return
        terminate(self.process)
        self.process = None
        self.log.close()
        # Only this server's files: another session's server may be running beside us.
        for leftover in Path("/dev/shm").glob(f"jack*_{self.name}_*"):
            with contextlib.suppress(OSError):
                leftover.unlink()


def require(missing: str | None) -> None:
    """Skip for ``missing`` (a reason), or fail under ``MIDIDUET_REQUIRE_JACK=1`` (CI sets it,
    so a broken CI image cannot pass by skipping the real-MIDI and live-manager tests)."""
    if missing:
        if os.environ.get("MIDIDUET_REQUIRE_JACK") == "1":
            pytest.fail(f"MIDIDUET_REQUIRE_JACK=1 but {missing}")
        pytest.skip(missing)


def jack_available() -> str | None:
    """None when jackd and jack_wait are installed, else why not."""
    missing = [tool for tool in ("jackd", "jack_wait") if shutil.which(tool) is None]
    return f"{', '.join(missing)} not installed (apt-get install jackd2)" if missing else None


# python-rtmidi calls back on JACK's thread, which must take the GIL for each event. Held
# up behind CPython's default 5 ms switch interval (a 256-frame period is 5.3 ms), the
# monitor was still reading a cycle when the daemon's next one cleared that buffer, and
# rtmidi, not checking jack_midi_event_get, repeated the last event it had read in place
# of the rest: events lost in 5 of 13 probe runs, 1 of 13 at the daemon's 0.5 ms
# (docs/reliability.md).


class Monitor:
    """A virtual JACK MIDI input that records ``(monotonic_ns, message)`` for each arrival.

    While open, this process's GIL switch interval is the daemon's for its own input
    (:data:`~mididuet.daemon.live.runner.SWITCH_INTERVAL_S`).
    """

    def __init__(self, client: str = "mdtest monitor", port: str = "in") -> None:
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch_interval, SWITCH_INTERVAL_S))
        self.messages: list[tuple[int, mido.Message]] = []
        backend = mido.Backend(JACK_BACKEND, load=True)
        # list.append is atomic under the GIL, so the callback needs no lock.
        self.port = backend.open_input(port, client_name=client,
                                       callback=lambda m: self.messages.append((time.monotonic_ns(), m)))
        self.name = f"{client}:{port}"

    def of_type(self, *types: str, since: int = 0) -> list[tuple[int, mido.Message]]:
        return [(t, m) for t, m in list(self.messages) if m.type in types and t >= since]

    def note_ons(self, since: int = 0) -> list[tuple[int, mido.Message]]:
        return [(t, m) for t, m in self.of_type("note_on", since=since) if m.velocity > 0]

    def note_offs(self, since: int = 0) -> list[tuple[int, mido.Message]]:
        return [(t, m) for t, m in self.of_type("note_on", "note_off", since=since)
                if m.type == "note_off" or m.velocity == 0]

    def clear(self) -> None:
        self.messages.clear()

    def close(self) -> None:
        self.port.callback = None
        self.port.close()
        sys.setswitchinterval(self._switch_interval)


class Player:
    """A virtual JACK MIDI output: the test's keyboard."""

    def __init__(self, client: str = "mdtest player", port: str = "out") -> None:
        backend = mido.Backend(JACK_BACKEND, load=True)
        self.port = backend.open_output(port, client_name=client)
        self.name = f"{client}:{port}"

    def send(self, msg: mido.Message) -> None:
        self.port.send(msg)

    def play(self, notes: list[int], step: float = 0.06, length: float = 0.04, velocity: int = 80,
             channel: int = 0) -> None:
        """Play single notes one after another (blocks about ``len(notes) * step`` s)."""
        for note in notes:
            self.send(mido.Message("note_on", note=note, velocity=velocity, channel=channel))
            time.sleep(length)
            self.send(mido.Message("note_off", note=note, velocity=0, channel=channel))
            time.sleep(max(step - length, 0.0))

    def chord(self, notes: list[int], spread: float = 0.005, length: float = 0.1, velocity: int = 80) -> None:
        """Play notes together, ``spread`` s apart (as a hand does), then release them."""
        for note in notes:
            self.send(mido.Message("note_on", note=note, velocity=velocity))
            time.sleep(spread)
        time.sleep(length)
        for note in notes:
            self.send(mido.Message("note_off", note=note, velocity=0))

    def perform(self, events: list[tuple[int, mido.Message]]) -> None:
        """Send ``(ns, message)`` events at their times from now, as a pianist plays them:
        any rhythm, overlapping notes, the pedal (blocks until the last one is sent)."""
        start = time.monotonic_ns()
        for at, msg in events:
            time.sleep(max(start + at - time.monotonic_ns(), 0) / 1e9)
            self.send(msg)

    def close(self) -> None:
        self.port.close()


class DaemonProcess:
    """``mididuet run`` as a real subprocess; stderr lines are collected as they come."""

    def __init__(self, args: list[str], env: dict[str, str], command: str = "run",
                 wrapper: tuple[str, ...] | list[str] = ()) -> None:
        """``wrapper``: a command prefix, e.g. ``pw-jack -p 256``."""
        self.args = [*wrapper, sys.executable, "-m", "mididuet.daemon", command, *args]
        self.lines: list[str] = []
        self.control: Path | None = None  # its control socket, when the test knows it
        self.process = subprocess.Popen(self.args, env={**os.environ, **env}, cwd=REPO,
                                        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))

    @property
    def stderr(self) -> str:
        return "\n".join(self.lines)

    def wait_for_line(self, text: str, timeout: float = 10.0) -> str:
        """The first stderr line containing ``text``; AssertionError (with stderr) on timeout."""
        def find() -> str | None:
            return next((line for line in list(self.lines) if text in line), None)

        found = poll(lambda: find() or self.process.poll() is not None, timeout)
        line = find()
        if not found or line is None:
            raise AssertionError(f"no line with {text!r} within {timeout} s "
                                 f"(exit code {self.process.poll()}); stderr:\n{self.stderr}")
        return line

    def wait_ready(self, timeout: float = 10.0) -> str:
        return self.wait_for_line("ready", timeout)

    def played_tokens(self, since: int = 0) -> list[str]:
        """The tokens it played, from stderr line ``since`` on (``--log-level debug`` logs
        each: "play token X")."""
        return [line.rsplit(" ", 1)[1] for line in self.lines[since:] if "play token" in line]

    def answer_lengths(self) -> list[int]:
        """Each answer's length as the engine decided it, in tokens (debug: "answer of N tokens")."""
        return [int(line.split("answer of ")[1].split()[0]) for line in list(self.lines) if "answer of " in line]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 5.0) -> int:
        """Send ``sig`` and wait for the exit code (killed, and -9 returned, after ``timeout``)."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return -9
        self._reader.join(timeout=2)
        return code

    def wait(self, timeout: float = 10.0) -> int:
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=2)
        return code


class FluidSynth:
    """FluidSynth as a JACK MIDI client ("fsynth:midi_00") writing its audio to ``wav``."""

    def __init__(self, wav: Path, env: dict[str, str], client: str = "fsynth") -> None:
        soundfont = next((sf for sf in SOUNDFONTS if sf.exists()), None)
        if soundfont is None or shutil.which("fluidsynth") is None:
            raise FileNotFoundError("fluidsynth and a GM soundfont are needed (apt-get install fluidsynth)")
        self.wav = wav
        self.port_name = f"{client}:midi_00"
        # stdin stays an open pipe: with no stdin FluidSynth's shell exits at once.
        self.process = subprocess.Popen(
            ["fluidsynth", "-m", "jack", "-a", "file", "-o", f"midi.jack.id={client}",
             "-o", f"audio.file.name={wav}", "-T", "wav", "-r", "48000", "-g", "1.0", str(soundfont)],
            env={**os.environ, **env}, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, text=True,
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(BrokenPipeError, OSError):
                assert self.process.stdin is not None
                self.process.stdin.write("quit\n")
                self.process.stdin.flush()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.terminate()
                self.process.wait()


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for this process (libjack reads them at client open)."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def onset_groups(events: list[tuple[int, mido.Message]], tolerance_ns: int = 20_000_000) -> list[list]:
    """Note-ons grouped by onset: the notes of one token are sent together."""
    groups: list[list] = []
    for t, msg in events:
        if groups and t - groups[-1][-1][0] <= tolerance_ns:
            groups[-1].append((t, msg))
        else:
            groups.append([(t, msg)])
    return groups


def hanging(events: list[tuple[int, mido.Message]], all_notes_off: bool = False) -> set[tuple[int, int]]:
    """(channel, note) pairs whose last note-on has no note-off after it.

    ``all_notes_off``: a CC 123 ends every note of its channel too, as a synth hears it.
    Off by default, so a note-off the daemon forgot is not hidden by its CC 123 at exit.
    """
    sounding: set[tuple[int, int]] = set()
    for _, msg in events:
        if msg.type == "note_on" and msg.velocity > 0:
            sounding.add((msg.channel, msg.note))
        elif msg.type in ("note_on", "note_off"):
            sounding.discard((msg.channel, msg.note))
        elif all_notes_off and msg.type == "control_change" and msg.control == ALL_NOTES_OFF:
            sounding = {(c, n) for c, n in sounding if c != msg.channel}
    return sounding


def quiet_for(monitor: Monitor, seconds: float, timeout: float) -> bool:
    """Wait until the monitor has received nothing for ``seconds`` (False after ``timeout``)."""
    def quiet() -> bool:
        last = monitor.messages[-1][0] if monitor.messages else 0
        return time.monotonic_ns() - last >= seconds * 1e9
    return bool(poll(quiet, timeout, 0.05))
