"""The TOML config file: read it, check it, merge it with the flags, write the example.

Where: ``--config FILE``, else ``$XDG_CONFIG_HOME/mididuet/config.toml`` (``~/.config``
when ``XDG_CONFIG_HOME`` is unset) if that file exists. Keys are the ``run`` flags
without their dashes (:mod:`daemon.options`); precedence is defaults < file < flags.

Every problem is a :class:`ConfigError` naming the key, the value and what is allowed;
the CLI turns it into one line and exit code 2 before anything is opened. Read with the
standard library's ``tomllib`` only.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daemon.errors import MididuetError
from daemon.options import (
    ALL_OPTIONS,
    OPTIONS_BY_KEY,
    RUN_OPTIONS,
    SETTING_OPTIONS,
    Option,
    option_default,
)
from daemon.settings import EngineSettings

CONFIG_NAME = Path("mididuet") / "config.toml"
GROUPS = (
    ("ports and model", ("in", "out", "api", "model", "primer")),
    ("how it plays", tuple(opt.key for opt in SETTING_OPTIONS)),
    ("recording, logs and service", ("record", "stats", "rt-priority", "wait", "retry", "log-level")),
)


class ConfigError(MididuetError):
    """A config file or option value that cannot be used; the message says which and why."""


@dataclass
class RunConfig:
    """Everything ``mididuet run`` was asked for, after defaults, file and flags."""

    settings: EngineSettings = field(default_factory=EngineSettings)
    in_port: str | None = None
    out_port: str | None = None
    api: str | None = None
    model: Path | None = None
    primer: Path | None = None
    record: Path | None = None
    stats: float | None = None
    rt_priority: int = 5
    wait: bool | None = None
    retry: float = 2.0
    log_level: str | None = None
    path: Path | None = None  # the config file read, if any


def default_config_path(environ: dict[str, str] | os._Environ[str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/mididuet/config.toml`` (XDG's fallback: ``~/.config``)."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / CONFIG_NAME


def check_value(opt: Option, value: Any, where: str | None = None) -> Any:
    """``value`` (from TOML, or a flag when ``where`` is None) converted to the option's
    type; ConfigError otherwise, naming the key (or flag), the value and what is allowed:
    ``config.toml: channel must be an integer in range 1..16, got 17``.
    """
    name = opt.flag if where is None else opt.key
    prefix = "" if where is None else f"{where}: "

    def refuse(what: str) -> ConfigError:
        return ConfigError(f"{prefix}{name} must be {what}, got {_toml(value)}")

    kind = opt.type
    if kind is None:
        if not isinstance(value, bool):
            raise refuse(opt.allowed)
    elif kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise refuse(opt.allowed)
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise refuse(opt.allowed)
        value = float(value)
    elif not isinstance(value, str | Path):
        raise refuse(opt.allowed)
    elif kind is Path:
        value = Path(value).expanduser()
    if opt.choices and value not in opt.choices:
        raise refuse(opt.allowed)
    try:
        if opt.check is not None:
            opt.check(value)
        elif opt in SETTING_OPTIONS and value is not None:
            # EngineSettings owns the ranges: check this one field against the defaults.
            dataclasses.replace(EngineSettings(), **{opt.dest: value}).validate_fields()
    except ValueError as err:
        # The check names the field (phrase_gap_ms) or key; say it as the user wrote it.
        message = str(err)
        for own in (opt.dest, opt.key):
            if message.startswith(f"{own} "):
                message = f"{name} {message[len(own) + 1:]}"
                break
        raise ConfigError(prefix + message) from None
    return value


def read_config(path: Path) -> dict[str, Any]:
    """The file's options as ``{key: value}``, checked. Raises :class:`ConfigError`."""
    try:
        with path.open("rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist "
                          "(`mididuet config --example` prints one to start from)") from None
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror or err}") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    values = {}
    for key, value in raw.items():
        opt = OPTIONS_BY_KEY.get(key)
        if opt is None:
            close = difflib.get_close_matches(key, OPTIONS_BY_KEY, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(f"{path}: unknown key {key!r} = {_toml(value)}; {hint}"
                              f"known keys: {', '.join(OPTIONS_BY_KEY)}")
        values[key] = check_value(opt, value, str(path))
    return values


def resolve(args: argparse.Namespace, environ: dict[str, str] | os._Environ[str] | None = None) -> RunConfig:
    """Defaults, then the config file, then the flags given in ``args``; checked.

    ``args.config`` names the file (it must exist); without it the default path is read
    if present. Raises :class:`ConfigError`.
    """
    explicit = getattr(args, "config", None)
    path = explicit if explicit is not None else default_config_path(environ)
    from_file = read_config(path) if explicit is not None or path.is_file() else {}
    chosen: dict[str, Any] = {}
    for opt in ALL_OPTIONS:
        if hasattr(args, opt.dest):  # flags are SUPPRESSed when absent: present means given
            chosen[opt.dest] = check_value(opt, getattr(args, opt.dest))
        elif opt.key in from_file:
            chosen[opt.dest] = from_file[opt.key]
        else:
            chosen[opt.dest] = option_default(opt)
    settings = EngineSettings(**{opt.dest: chosen[opt.dest] for opt in SETTING_OPTIONS})
    try:
        settings.validate()  # what one key alone cannot break: bpm with clock, equal CCs
    except ValueError as err:
        where = f"{path} and flags" if from_file else "flags"
        raise ConfigError(f"{where}: {err}") from None
    run = {opt.dest: chosen[opt.dest] for opt in RUN_OPTIONS}
    return RunConfig(settings=settings, path=path if from_file or explicit else None, **run)


# --- the example config ------------------------------------------------------------------
def _toml(value: Any) -> str:
    """A value written as TOML (bool, number or string)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | dict):  # only in messages about a wrong value
        return json.dumps(value, default=str)
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def example_config() -> str:
    """The example config: every key, commented out, with its default and what it does."""
    lines = [
        "# mididuet config: keys are the `mididuet run` flags without their dashes.",
        "# Every line is commented out and shows the default (or an example when there is",
        "# none). Uncomment and change what you need; flags on the command line win.",
        "# Reload a running service with `systemctl --user reload mididuet` (ports and api:",
        "# restart it instead). See the names of your ports with `mididuet ports`.",
    ]
    for title, keys in GROUPS:
        lines += ["", f"# --- {title} ---"]
        for key in keys:
            opt = OPTIONS_BY_KEY[key]
            default = option_default(opt)
            if default is None:
                lines.append(f"# {opt.help} (default: {opt.default_text})")
                lines.append(f"# {key} = {_toml(opt.example)}")
            else:
                choices = f" [{', '.join(opt.choices)}]" if opt.choices else ""
                lines.append(f"# {opt.help}{choices}")
                lines.append(f"# {key} = {_toml(default)}")
    return "\n".join(lines) + "\n"

