"""The systemd user unit: shipped file, `systemd-analyze --user verify`, `service install`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mididuet.daemon.service import config
from mididuet.daemon.service import systemd as service
from tests.helpers.jack import REPO

SHIPPED_UNIT = REPO / "systemd" / "mididuet.service"


def verify(unit: Path, home: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``systemd-analyze --user verify`` without a running user manager: it needs a
    runtime directory and resolves %h from HOME (CI runs as root in a container)."""
    if shutil.which("systemd-analyze") is None:
        if os.environ.get("MIDIDUET_REQUIRE_JACK") == "1":  # CI installs systemd with JACK
            pytest.fail("systemd-analyze is not installed")
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "XDG_RUNTIME_DIR": str(runtime)}
    return subprocess.run(["systemd-analyze", "--user", "verify", str(unit)], env=env, capture_output=True,
                          text=True, timeout=60, check=False)


def test_the_shipped_unit_is_the_rendered_one() -> None:
    assert SHIPPED_UNIT.read_text() == service.render_unit(service.SHIPPED_EXEC)


def test_the_shipped_unit_verifies_clean(tmp_path: Path) -> None:
    home = tmp_path / "home"
    script = home / ".local" / "bin" / "mididuet"  # where %h/.local/bin/mididuet points
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    unit = tmp_path / "mididuet.service"
    shutil.copy(SHIPPED_UNIT, unit)
    done = verify(unit, home, tmp_path)
    assert done.returncode == 0 and done.stdout + done.stderr == "", done.stdout + done.stderr


def test_verify_catches_a_bad_unit(tmp_path: Path) -> None:
    """The check above can fail: a misspelt key and a missing program are reported."""
    unit = tmp_path / "mididuet.service"
    unit.write_text(service.render_unit("/nonexistent/mididuet").replace("NoNewPrivileges", "NoNewPrivilege"))
    done = verify(unit, tmp_path, tmp_path)
    report = done.stdout + done.stderr
    assert "Unknown key 'NoNewPrivilege'" in report and "/nonexistent/mididuet" in report


def test_install_writes_unit_and_config_and_keeps_an_existing_config(tmp_path: Path, config_home: Path) -> None:
    env = {"HOME": str(config_home.parent), "XDG_CONFIG_HOME": str(config_home), "PATH": os.environ["PATH"]}
    done = subprocess.run([sys.executable, "-m", "mididuet.daemon", "service", "install"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=30, check=True)
    unit = config_home / "systemd" / "user" / "mididuet.service"
    conf = config_home / "mididuet" / "config.toml"
    assert conf.read_text() == config.example_config()
    text = unit.read_text()
    exec_start = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    program = exec_start.removeprefix("ExecStart=").split()[0]
    assert Path(program).is_absolute() and os.access(program, os.X_OK), exec_start
    for command in ("systemctl --user daemon-reload", "systemctl --user enable --now mididuet",
                    "journalctl --user -u mididuet"):
        assert command in done.stdout
    checked = verify(unit, config_home.parent, tmp_path)
    assert checked.returncode == 0 and checked.stdout + checked.stderr == "", checked.stderr

    conf.write_text('in = "my keyboard"\n')
    again = subprocess.run([sys.executable, "-m", "mididuet.daemon", "service", "install"], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=30, check=True)
    assert conf.read_text() == 'in = "my keyboard"\n', "an existing config is never overwritten"
    assert f"kept {conf}" in again.stdout
