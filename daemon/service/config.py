"""The TOML config file: read it, check it, merge it with the flags, write the example.

Where: ``--config FILE``, else ``$XDG_CONFIG_HOME/mididuet/config.toml`` (``~/.config``
when ``XDG_CONFIG_HOME`` is unset) if that file exists. Keys are the ``run`` flags
without their dashes; each is a declared field of :class:`..live.options.RunOptions` or
:class:`..engine.settings.EngineSettings`. Precedence: defaults < the service's defaults
(under systemd) < file < flags.

Every problem is a :class:`ConfigError` naming the key, the value and what is allowed;
the CLI turns it into one line and exit code 2 before anything is opened. Read with the
standard library's ``tomllib`` only.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import tomllib
from pathlib import Path
from typing import Any

from ..engine.settings import HOW_IT_PLAYS, Declared, EngineSettings, declared
from ..errors import MididuetError
from ..live.options import PORTS_AND_MODEL, SERVICE, RunOptions
from .notify import under_systemd

CONFIG_NAME = Path("mididuet") / "config.toml"
ENGINE_OPTIONS = declared(EngineSettings)
RUN_OPTIONS = declared(RunOptions)
ALL_OPTIONS = RUN_OPTIONS + ENGINE_OPTIONS
OPTIONS_BY_KEY: dict[str, Declared] = {d.setting.key: d for d in ALL_OPTIONS}
GROUPS = tuple((title, tuple(d.setting.key for d in ALL_OPTIONS if d.setting.group == title))
               for title in (PORTS_AND_MODEL, HOW_IT_PLAYS, SERVICE))

Environ = dict[str, str] | os._Environ[str]


class ConfigError(MididuetError):
    """A config file or option value that cannot be used; the message says which and why."""


def default_config_path(environ: Environ | None = None) -> Path:
    """``$XDG_CONFIG_HOME/mididuet/config.toml`` (XDG's fallback: ``~/.config``)."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / CONFIG_NAME


def check_value(d: Declared, value: Any, where: str | None = None) -> Any:
    """``value`` (from TOML, or a flag when ``where`` is None) converted to the option's
    type; ConfigError otherwise, naming the key (or flag), the value and what is allowed:
    ``config.toml: channel must be an integer in range 1..16, got 17``.
    """
    s = d.setting
    name = s.flag if where is None else s.key
    prefix = "" if where is None else f"{where}: "

    def refuse(what: str) -> ConfigError:
        return ConfigError(f"{prefix}{name} must be {what}, got {_toml(value)}")

    kind = s.type
    if kind is None:
        if not isinstance(value, bool):
            raise refuse(s.allowed(repr))
    elif kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise refuse(s.allowed(repr))
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise refuse(s.allowed(repr))
        value = float(value)
    elif not isinstance(value, str | Path):
        raise refuse(s.allowed(repr))
    elif kind is Path:
        value = Path(value).expanduser()
    if s.choices and value not in s.choices:
        raise refuse(s.allowed(repr))
    try:
        s.refuse(value)
    except ValueError as err:
        raise ConfigError(f"{prefix}{name} {err}") from None
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
        d = OPTIONS_BY_KEY.get(key)
        if d is None:
            close = difflib.get_close_matches(key, OPTIONS_BY_KEY, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(f"{path}: unknown key {key!r} = {_toml(value)}; {hint}"
                              f"known keys: {', '.join(OPTIONS_BY_KEY)}")
        values[key] = check_value(d, value, str(path))
    return values


def resolve(args: argparse.Namespace, environ: Environ | None = None) -> RunOptions:
    """Defaults, the service's defaults, then the config file, then the flags given in
    ``args``; checked. ``args.config`` names the file (it must exist); without it the
    default path is read if present. Raises :class:`ConfigError`.
    """
    explicit = getattr(args, "config", None)
    path = explicit if explicit is not None else default_config_path(environ)
    from_file = read_config(path) if explicit is not None or path.is_file() else {}
    service = under_systemd(environ)
    chosen: dict[str, Any] = {}
    for d in ALL_OPTIONS:
        if hasattr(args, d.name):  # flags are SUPPRESSed when absent: present means given
            chosen[d.name] = check_value(d, getattr(args, d.name))
        elif d.setting.key in from_file:
            chosen[d.name] = from_file[d.setting.key]
        elif service and d.setting.under_systemd is not None:
            chosen[d.name] = d.setting.under_systemd
        else:
            chosen[d.name] = d.default
    settings = EngineSettings(**{d.name: chosen[d.name] for d in ENGINE_OPTIONS})
    try:
        settings.validate()  # what one key alone cannot break: bpm with clock, equal CCs
    except ValueError as err:
        where = f"{path} and flags" if from_file else "flags"
        raise ConfigError(f"{where}: {err}") from None
    return RunOptions(settings=settings, config_path=path if from_file or explicit else None,
                      **{d.name: chosen[d.name] for d in RUN_OPTIONS})


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
            d = OPTIONS_BY_KEY[key]
            s = d.setting
            if d.default is None:
                lines.append(f"# {s.help} (default: {s.default_text})")
                lines.append(f"# {key} = {_toml(s.example)}")
            else:
                choices = f" [{', '.join(s.choices)}]" if s.choices else ""
                also = f" (default: {s.default_text})" if s.default_text else ""
                lines.append(f"# {s.help}{choices}{also}")
                lines.append(f"# {key} = {_toml(d.default)}")
    return "\n".join(lines) + "\n"
