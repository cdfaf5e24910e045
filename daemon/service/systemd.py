"""The systemd user unit, and ``mididuet service install``.

``mididuet service install`` writes the user unit (:func:`render_unit`) to
``~/.config/systemd/user/mididuet.service`` and the example config to
``~/.config/mididuet/config.toml`` unless one exists, then prints the ``systemctl
--user`` commands. The shipped ``systemd/`` files are these same texts (a test checks).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from ..errors import MididuetError
from . import config

UNIT_NAME = "mididuet.service"
SHIPPED_EXEC = "%h/.local/bin/mididuet"  # where `pipx install` puts the script

# Each line is explained in docs/service.md. Only what works in a *user*
# unit without privileges: seccomp- and prctl-based lines. Mount namespaces
# (ProtectSystem, PrivateTmp) and IPAddressDeny need privileges a user manager may
# lack; they belong to the system-wide install (README).
UNIT_TEMPLATE = """\
# mididuet as a systemd user service: `mididuet service install` puts it in
# ~/.config/systemd/user/. Settings live in ~/.config/mididuet/config.toml.
# Watch it from any terminal of yours: `mididuet watch` (or `mididuet status`), over the
# control socket $XDG_RUNTIME_DIR/mididuet/control.sock, at the same path after restarts.
[Unit]
Description=mididuet, a MIDI improvisation partner
After=pipewire.service jack.service

[Service]
Type=notify
ExecStart={exec_start} run
ExecReload=kill -HUP $MAINPID
Restart=on-failure
RestartSec=5
WatchdogSec=10
TimeoutStopSec=5
Environment=JACK_NO_START_SERVER=1
NoNewPrivileges=yes
RestrictAddressFamilies=AF_UNIX

[Install]
WantedBy=default.target
"""


# --- the unit and `service install` ----------------------------------------------------------
def render_unit(exec_start: str = SHIPPED_EXEC) -> str:
    return UNIT_TEMPLATE.format(exec_start=exec_start)


def script_path() -> str:
    """The absolute command that starts this installation's mididuet."""
    beside = Path(sys.executable).parent / "mididuet"  # a venv's or pipx's bin directory
    if beside.is_file():
        return str(beside)
    found = shutil.which("mididuet")
    if found:
        return str(Path(found).resolve())
    return f"{sys.executable} -m mididuet.daemon"


def user_config_home(environ: dict[str, str] | os._Environ[str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config")


def install(environ: dict[str, str] | os._Environ[str] | None = None, exec_start: str | None = None) -> str:
    """Write the user unit (replacing ours) and the config (never replacing one).

    Returns what to tell the user. Raises ``MididuetError`` when a file cannot be written.
    """
    home = user_config_home(environ)
    unit_path = home / "systemd" / "user" / UNIT_NAME
    config_path = config.default_config_path(environ)
    lines = []
    try:
        unit_path.parent.mkdir(parents=True, exist_ok=True)
        unit_path.write_text(render_unit(exec_start or script_path()))
        lines.append(f"wrote {unit_path}")
        if config_path.exists():
            lines.append(f"kept {config_path} (it exists; `mididuet config --example` shows every key)")
        else:
            config_path.parent.mkdir(parents=True, exist_ok=True)
            config_path.write_text(config.example_config())
            lines.append(f"wrote {config_path}")
    except OSError as err:
        raise MididuetError(f"cannot write {err.filename}: {err.strerror}") from err
    lines += [
        "",
        "next:",
        "  mididuet ports                                # the names of your keyboard and synth",
        f"  nano {config_path}   # set in = ... and out = ...",
        "  systemctl --user daemon-reload",
        "  systemctl --user enable --now mididuet        # start now and at every login",
        "  systemctl --user status mididuet              # its STATUS line: ports, mode, model",
        "  journalctl --user -u mididuet -f              # its log",
        "  systemctl --user reload mididuet              # after editing the config",
    ]
    return "\n".join(lines)
