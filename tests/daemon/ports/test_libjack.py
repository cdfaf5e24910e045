"""Whose libjack rtmidi calls, PipeWire's socket, and the advice built from them: on real
files and real sockets, no JACK server needed."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest

from mididuet.daemon.ports.api import PW_JACK_RUN, jack_advice
from mididuet.daemon.ports.libjack import classify, pipewire_socket, rebuild_command, rtmidi_libjack
from tests.helpers.jack import REPO, require
from tests.helpers.pipewire import pw_jack_dir

SYSTEM_LIBJACK = next((p for p in (Path("/usr/lib/x86_64-linux-gnu/libjack.so.0"), Path("/usr/lib64/libjack.so.0"),
                                   Path("/usr/lib/aarch64-linux-gnu/libjack.so.0")) if p.exists()), None)
ERROR = "MidiOutJack::initialize: JACK server not running?"


@pytest.fixture
def runtime_with_socket(tmp_path: Path) -> Iterator[Path]:
    """A runtime directory holding a real AF_UNIX socket named pipewire-0."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(tmp_path / "pipewire-0"))
    yield tmp_path
    sock.close()


def wheel_libjack() -> Path:
    found = rtmidi_libjack()
    assert found is not None
    return found.path


def test_this_venvs_rtmidi_calls_its_bundled_copy() -> None:
    found = rtmidi_libjack()
    assert found is not None and found.bundled and not found.pipewire
    assert "python_rtmidi" in str(found.path) and found.path.exists()


def test_the_system_and_pipewire_libjacks_are_told_apart() -> None:
    require(None if SYSTEM_LIBJACK else "no system libjack (apt-get install libjack-jackd2-0)")
    system = classify(SYSTEM_LIBJACK)  # type: ignore[arg-type]
    assert not system.bundled and not system.pipewire and system.owner == "the system's"
    lib = pw_jack_dir()
    require(None if lib else "no PipeWire libjack (apt-get install pipewire-jack)")
    pipewire = classify(lib / "libjack.so.0")  # type: ignore[operator]
    assert pipewire.pipewire and not pipewire.bundled and pipewire.owner == "PipeWire's"
    # Under another site-packages, the same system file is still not a bundled copy.
    assert not classify(SYSTEM_LIBJACK, site_packages=Path(sys.prefix)).bundled  # type: ignore[arg-type]


def test_pipewires_socket_is_found_where_its_clients_look(runtime_with_socket: Path) -> None:
    found = runtime_with_socket / "pipewire-0"
    assert pipewire_socket({"XDG_RUNTIME_DIR": str(runtime_with_socket)}) == found
    first = {"PIPEWIRE_RUNTIME_DIR": str(runtime_with_socket), "XDG_RUNTIME_DIR": "/nonexistent"}
    assert pipewire_socket(first) == found
    assert pipewire_socket({"XDG_RUNTIME_DIR": str(runtime_with_socket), "PIPEWIRE_REMOTE": "other"}) is None
    assert pipewire_socket({}) is None


def test_a_file_that_is_no_socket_is_no_pipewire(tmp_path: Path) -> None:
    (tmp_path / "pipewire-0").write_text("")
    assert pipewire_socket({"XDG_RUNTIME_DIR": str(tmp_path)}) is None


def test_the_bundled_copy_with_pipewire_running_gets_the_rebuild_and_pw_jack(runtime_with_socket: Path) -> None:
    bundled = classify(wheel_libjack())
    advice = jack_advice(ERROR, bundled, runtime_with_socket / "pipewire-0")
    assert advice.startswith(f"cannot reach a JACK server ({ERROR}): PipeWire runs here ({runtime_with_socket}/")
    assert f"its own bundled libjack ({bundled.path})" in advice
    assert f"`{rebuild_command()}`" in advice and advice.endswith(f"then `{PW_JACK_RUN}`")
    # Without PipeWire, the usual advice comes first, the rebuild only as an aside.
    alone = jack_advice(ERROR, bundled, None)
    assert "start JACK first" in alone and "if your JACK is PipeWire's" in alone and rebuild_command() in alone


def test_the_system_libjack_with_pipewire_running_gets_pw_jack(runtime_with_socket: Path) -> None:
    require(None if SYSTEM_LIBJACK else "no system libjack (apt-get install libjack-jackd2-0)")
    advice = jack_advice(ERROR, classify(SYSTEM_LIBJACK), runtime_with_socket / "pipewire-0")  # type: ignore[arg-type]
    assert "python-rtmidi calls the system's libjack" in advice and advice.endswith(f"`{PW_JACK_RUN}`")
    assert "pip install" not in advice
    plain = jack_advice(ERROR, classify(SYSTEM_LIBJACK), None)  # type: ignore[arg-type]
    assert "start JACK first" in plain and "PipeWire" not in plain


def test_pipewires_libjack_without_a_pipewire_says_to_start_it() -> None:
    lib = pw_jack_dir()
    require(None if lib else "no PipeWire libjack (apt-get install pipewire-jack)")
    advice = jack_advice(ERROR, classify(lib / "libjack.so.0"), None)  # type: ignore[operator]
    assert "this is PipeWire's libjack" in advice and "systemctl --user start pipewire" in advice


def test_the_rebuild_command_pins_the_version_in_use_and_names_the_build_deps() -> None:
    command = rebuild_command("/venv/bin/python")
    assert command == ("sudo apt-get install libjack-jackd2-dev libasound2-dev pkg-config g++ && /venv/bin/python "
                       "-m pip install --force-reinstall --no-deps --no-binary python-rtmidi "
                       f"python-rtmidi=={version('python-rtmidi')}")


def test_the_check_make_rtmidi_system_runs_refuses_the_bundled_copy() -> None:
    done = subprocess.run([sys.executable, "-m", "mididuet.daemon.ports.libjack", "--require-system"], cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1 and "python-rtmidi's bundled libjack" in done.stdout, done.stdout + done.stderr
