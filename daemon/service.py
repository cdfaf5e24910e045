"""mididuet as a service: run options from config and flags, the systemd user unit, install.

``mididuet run`` under systemd (``NOTIFY_SOCKET`` set, as for a ``Type=notify`` unit)
changes two defaults, both overridable in the config or by flags: it waits for missing
ports (``wait``) instead of exiting, and prints a stats line every 10 minutes. In a
terminal, an unknown port name stays a fast error listing the ports that exist.

``mididuet service install`` writes the user unit (:func:`render_unit`) to
``~/.config/systemd/user/mididuet.service`` and the example config to
``~/.config/mididuet/config.toml`` unless one exists, then prints the ``systemctl
--user`` commands. The shipped ``systemd/`` files are these same texts (a test checks).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
from pathlib import Path

from daemon import config
from daemon.errors import MididuetError
from daemon.notify import NOTIFY_SOCKET, Notifier
from daemon.options import SERVICE_STATS_S
from daemon.runner import RunOptions

log = logging.getLogger("mididuet.service")

UNIT_NAME = "mididuet.service"
SHIPPED_EXEC = "%h/.local/bin/mididuet"  # where `pipx install` puts the script
DEFAULT_LOG_LEVEL = "info"

# Each line is explained in the README ("Run at login"). Only what works in a *user*
# unit without privileges: seccomp- and prctl-based lines. Mount namespaces
# (ProtectSystem, PrivateTmp) and IPAddressDeny need privileges a user manager may
# lack; they belong to the system-wide install (README).
UNIT_TEMPLATE = """\
# mididuet as a systemd user service: `mididuet service install` puts it in
# ~/.config/systemd/user/. Settings live in ~/.config/mididuet/config.toml.
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


def under_systemd(environ: dict[str, str] | os._Environ[str] | None = None) -> bool:
    """True when systemd listens for notifications (a ``Type=notify`` service)."""
    return bool((os.environ if environ is None else environ).get(NOTIFY_SOCKET))


def build_options(args: argparse.Namespace, environ: dict[str, str] | os._Environ[str] | None = None) -> RunOptions:
    """Run options from defaults, config file and flags. Raises ``MididuetError`` (``ConfigError``)."""
    cfg = config.resolve(args, environ)
    service = under_systemd(environ)
    primer = None
    if cfg.primer is not None:
        from daemon.midi_reader import MidiReadError, read_tokens

        try:
            primer = read_tokens(cfg.primer)
        except (MidiReadError, OSError) as err:
            raise MididuetError(f"primer {cfg.primer}: {err}") from err
    stats = cfg.stats if cfg.stats is not None else (SERVICE_STATS_S if service else None)
    return RunOptions(settings=cfg.settings, model=cfg.model, primer=primer, in_port=cfg.in_port,
                      out_port=cfg.out_port, api=cfg.api, record_dir=cfg.record, stats_interval_s=stats,
                      rt_priority=cfg.rt_priority, wait=service if cfg.wait is None else cfg.wait,
                      retry_s=cfg.retry, log_level=cfg.log_level or DEFAULT_LOG_LEVEL)


def run_options(args: argparse.Namespace) -> RunOptions:
    """What ``mididuet run`` runs with: :func:`build_options`, the systemd notifier, and
    a reload hook that reads the same config and flags again. Sets the log level."""
    options = build_options(args)
    logging.getLogger().setLevel((options.log_level or DEFAULT_LOG_LEVEL).upper())
    path = args.config if getattr(args, "config", None) is not None else config.default_config_path()
    log.info("config %s%s", path, "" if path.is_file() else " (absent: defaults and flags only)")
    options.notifier = Notifier.from_environ()
    options.reload = lambda: build_options(args)
    return options


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
    return f"{sys.executable} -m daemon.cli"


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
