"""mididuet installs as it is used: the namespace ``mididuet`` and nothing at the top level.

The wheel is built from this checkout and installed into a fresh venv beside
python-daemon, whose own top-level ``daemon`` package a top-level ``daemon`` of ours used
to overwrite. Both must import, and ``mididuet --help``, ``mididuet demo`` and
``python -m mididuet.daemon`` must work from the wheel; the editable install this suite
runs from must offer the same entry points.
"""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.jack import REPO

BIN = Path(sys.executable).parent
INSTALL_TIMEOUT_S = 600


def run(*command: str | Path, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd, stdin=subprocess.DEVNULL, check=False)
    shown = " ".join(map(str, command))
    assert done.returncode == 0, f"{shown} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", out, REPO,
        timeout=INSTALL_TIMEOUT_S)
    (found,) = out.glob("mididuet-*.whl")
    return found


@pytest.fixture(scope="module")
def fresh_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A new venv holding the wheel and python-daemon (and what they depend on)."""
    home = tmp_path_factory.mktemp("venv") / "v"
    venv.create(home, with_pip=True)
    run(home / "bin" / "pip", "install", "-q", wheel, "python-daemon", timeout=INSTALL_TIMEOUT_S)
    yield home


def test_the_wheel_holds_only_the_mididuet_namespace(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        tops = {name.split("/")[0] for name in archive.namelist()}
        names = set(archive.namelist())
    assert tops == {"mididuet", wheel.name.split("-py3")[0] + ".dist-info"}, tops
    assert "mididuet/__init__.py" not in names, "mididuet is a namespace package: no __init__ of its own"
    for must in ("mididuet/daemon/cli.py", "mididuet/daemon/live/runner.py", "mididuet/training/cli.py",
                 "mididuet/models/chopin.onnx", "mididuet/models/chopin.md"):
        assert must in names, must


def test_it_installs_beside_python_daemon_and_both_import(fresh_venv: Path, tmp_path: Path) -> None:
    # Away from the checkout, whose own daemon/ folder would shadow python-daemon on sys.path.
    python = fresh_venv / "bin" / "python"
    done = run(python, "-c", "import daemon, daemon.pidfile, mididuet.daemon.live.runner as r, mididuet.training; "
               "print(daemon.DaemonContext.__module__, daemon.__file__, r.__file__)", cwd=tmp_path)
    module, theirs, ours = done.stdout.split()
    assert module == "daemon.daemon", "python-daemon's own package answers to `import daemon`"
    assert Path(theirs).parent.name == "daemon" and Path(ours).parts[-4:-1] == ("mididuet", "daemon", "live")


def test_the_commands_work_from_the_wheel(fresh_venv: Path, tmp_path: Path) -> None:
    bin_dir = fresh_venv / "bin"
    assert "listen on a port" in run(bin_dir / "mididuet", "--help", cwd=tmp_path).stdout
    assert "usage: mididuet" in run(bin_dir / "python", "-m", "mididuet.daemon", "--help", cwd=tmp_path).stdout
    done = run(bin_dir / "mididuet", "demo", "--out-dir", tmp_path / "demo", cwd=tmp_path, timeout=300)
    assert "mididuet answered" in done.stdout
    assert (tmp_path / "demo" / "duet.mid").stat().st_size > 100
    # The trainer's script is installed too; it says what it needs rather than failing at import.
    assert run(bin_dir / "mididuet-train", "--help", cwd=tmp_path).returncode == 0


def test_the_editable_install_offers_the_same_entry_points(tmp_path: Path) -> None:
    assert "listen on a port" in run(BIN / "mididuet", "--help").stdout
    assert "usage: mididuet" in run(sys.executable, "-m", "mididuet.daemon", "--help").stdout
    assert "mididuet-train" in run(BIN / "mididuet-train", "--help").stdout
