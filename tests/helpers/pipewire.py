"""PipeWire's JACK for tests: a private headless ``pipewire`` and a python-rtmidi that reaches it.

- :class:`PipeWireServer` runs ``pipewire`` with a runtime directory of its own (0700), so
  it never meets a user's PipeWire; the stock config's ``Dummy-Driver`` drives JACK clients
  without devices or a session manager. Its :attr:`~PipeWireServer.env`
  is what ``pw-jack -p QUANTUM`` sets (``LD_LIBRARY_PATH`` to PipeWire's libjack,
  ``PIPEWIRE_QUANTUM``), plus the runtime directory and, when given, a python-rtmidi
  built against the system's libjack on ``PYTHONPATH``.
- :func:`system_rtmidi` builds that python-rtmidi with ``make rtmidi-system
  RTMIDI_TARGET=...`` (the documented way) once per venv: the PyPI wheel's bundled
  libjack ignores ``pw-jack``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

from .jack import JACK_BACKEND, REPO, TEST_PERIOD, poll, terminate

# Where Debian and Fedora put PipeWire's libjack (what pw-jack puts on LD_LIBRARY_PATH).
PW_JACK_DIRS = ("/usr/lib/x86_64-linux-gnu/pipewire-0.3/jack", "/usr/lib/aarch64-linux-gnu/pipewire-0.3/jack",
                "/usr/lib64/pipewire-0.3/jack", "/usr/lib/pipewire-0.3/jack")
# The suite's quantum: the JACK suite's period (tests/helpers/jack.py says why 256), so
# both servers run the same tests at the same period. PipeWire's own default is 1024.
TEST_QUANTUM = int(os.environ.get("MIDIDUET_TEST_PW_QUANTUM", str(TEST_PERIOD)))


def pw_jack_dir() -> Path | None:
    return next((Path(d) for d in PW_JACK_DIRS if (Path(d) / "libjack.so.0").exists()), None)


def pipewire_available() -> str | None:
    """None when pipewire, pipewire-jack and pw-jack are installed, else why not."""
    missing = [tool for tool in ("pipewire", "pw-jack", "jack_wait") if shutil.which(tool) is None]
    if pw_jack_dir() is None:
        missing.append("PipeWire's libjack")
    if not missing:
        return None
    return f"{', '.join(missing)} not installed (apt-get install pipewire pipewire-jack pipewire-bin)"


def system_rtmidi(python: str = sys.executable) -> Path:
    """A directory holding python-rtmidi (this venv's version) built against the system's
    libjack, for ``PYTHONPATH``; built by ``make rtmidi-system`` unless there. Raises
    ``RuntimeError`` with make's output when the build fails."""
    venv = Path(python).parent.parent
    rt_version = version("python-rtmidi")
    target = venv / f"rtmidi-system-{rt_version}"
    if not (target / f"python_rtmidi-{rt_version}.dist-info").is_dir():
        done = subprocess.run(["make", "-s", "-C", str(REPO), "rtmidi-system", f"VENV={venv}",
                               f"RTMIDI_TARGET={target}"], capture_output=True, text=True, timeout=600, check=False)
        if done.returncode != 0:
            shutil.rmtree(target, ignore_errors=True)
            raise RuntimeError(f"make rtmidi-system failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return target


class PipeWireServer:
    """A private ``pipewire`` (dummy driver). ``start`` blocks until JACK clients can connect;
    ``stop`` then ``start`` again is a restart, on the same socket."""

    def __init__(self, quantum: int = TEST_QUANTUM, rate: int = 48000, rtmidi: Path | None = None) -> None:
        self.quantum = quantum
        self.rate = rate
        self.rtmidi = rtmidi
        self.runtime = Path(tempfile.mkdtemp(prefix="mdtest-pw-"))  # mkdtemp makes it 0700
        self.process: subprocess.Popen[bytes] | None = None
        self.log: tempfile._TemporaryFileWrapper[bytes] | None = None
        self.jack_dir = pw_jack_dir()

    @property
    def socket(self) -> Path:
        return self.runtime / "pipewire-0"

    @property
    def pw_jack(self) -> list[str]:
        """The command prefix a user types: ``pw-jack -p QUANTUM``."""
        return ["pw-jack", "-p", str(self.quantum)]

    @property
    def base_env(self) -> dict[str, str]:
        """The runtime directory, no auto-started jackd, the JACK API, and the rtmidi to use."""
        env = {"XDG_RUNTIME_DIR": str(self.runtime), "JACK_NO_START_SERVER": "1", "MIDO_BACKEND": JACK_BACKEND}
        if self.rtmidi is not None:
            env["PYTHONPATH"] = str(self.rtmidi)
        return env

    @property
    def env(self) -> dict[str, str]:
        """What a JACK client needs to run on this PipeWire: :attr:`base_env` and what
        ``pw-jack -p QUANTUM`` sets."""
        return {**self.base_env, "PIPEWIRE_QUANTUM": f"{self.quantum}/{self.rate}",
                "LD_LIBRARY_PATH": str(self.jack_dir)}

    def start(self, timeout: float = 10.0) -> None:
        # Its log goes to a file, never to a pipe nobody reads (as jackd's: JackServer.start).
        self.log = tempfile.NamedTemporaryFile(prefix="mdtest-pw-", suffix=".log")  # noqa: SIM115 - closed in close()
        env = {key: value for key, value in os.environ.items() if not key.startswith(("PIPEWIRE_", "JACK_"))}
        self.process = subprocess.Popen(["pipewire"], env={**env, "XDG_RUNTIME_DIR": str(self.runtime)},
                                        stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)

        def running() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"pipewire exited: {self.read_log()}")
            if not self.socket.exists():
                return False
            check = subprocess.run(["jack_wait", "-c"], capture_output=True, text=True, check=False,
                                   env={**os.environ, **self.env})
            return check.stdout.strip() == "running"

        if not poll(running, timeout, 0.02):
            self.stop()
            raise RuntimeError(f"pipewire did not start within {timeout} s: {self.read_log()}")

    def read_log(self) -> str:
        if self.log is None:
            return ""
        with open(self.log.name, encoding="utf-8", errors="replace") as log:
            return log.read()

    def buffer_size(self) -> int:
        """The period a JACK client of ours is given (``jack_bufsize``, with our env)."""
        done = subprocess.run(["jack_bufsize"], capture_output=True, text=True, check=True, timeout=10,
                              env={**os.environ, **self.env})
        return int(done.stdout.split()[-1])

    def stop(self) -> None:
        if self.process is None:
            return
        terminate(self.process)
        self.process = None
        if self.log is not None:
            self.log.close()
            self.log = None

    def close(self) -> None:
        """Stop it and remove its runtime directory."""
        self.stop()
        with contextlib.suppress(OSError):
            shutil.rmtree(self.runtime)
