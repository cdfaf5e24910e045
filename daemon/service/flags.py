"""Command-line flags built from the declared settings (:mod:`..engine.settings`).

Absent flags stay absent from the namespace (``argparse.SUPPRESS``), so the config file
and the defaults can fill in what was not given (:func:`.config.resolve`).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from ..engine.settings import Declared, EngineSettings, declared
from ..live.options import PORTS_AND_MODEL, SERVICE, RunOptions

# --log-level is every command's (the CLI adds it), so not among run's own groups.
GLOBAL = ("log_level",)


def add_flag(group: argparse._ActionsContainer, d: Declared) -> None:
    """One flag for a declared field."""
    s = d.setting
    shown = s.default_text if d.default is None else d.default
    suffix = "" if shown is None else f" (default: {shown})"
    if s.type is None:
        # --thru and --no-thru: a flag can switch off what the config file switched on.
        group.add_argument(s.flag, dest=d.name, action=argparse.BooleanOptionalAction,
                           default=argparse.SUPPRESS, help=s.help + suffix)
    elif s.const is not None:
        group.add_argument(s.flag, dest=d.name, type=s.type, nargs="?", const=s.const,
                           metavar=s.metavar, default=argparse.SUPPRESS,
                           help=f"{s.help} (alone: {s.const:g}){suffix}")
    else:
        group.add_argument(s.flag, dest=d.name, type=s.type, choices=s.choices, metavar=s.metavar,
                           default=argparse.SUPPRESS, help=s.help + suffix)


def add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """A flag per engine setting."""
    group = parser.add_argument_group("how it plays")
    for d in declared(EngineSettings):
        add_flag(group, d)


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    """``run``'s flags: the config file, ports and model, service, and the engine settings."""
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="TOML config file; flags override it (default: $XDG_CONFIG_HOME/mididuet/config.toml "
                        "if it exists; `mididuet config --example` prints one)")
    for title in (PORTS_AND_MODEL, SERVICE):
        group = parser.add_argument_group(title)
        for d in declared(RunOptions):
            if d.setting.group == title and d.name not in GLOBAL:
                add_flag(group, d)
    add_setting_flags(parser)


def settings_from_args(args: argparse.Namespace, base: EngineSettings | None = None) -> EngineSettings:
    """``base`` (default: the defaults) with the flags given applied. Raises ``ValueError``."""
    given = {d.name: getattr(args, d.name) for d in declared(EngineSettings) if hasattr(args, d.name)}
    settings = dataclasses.replace(base or EngineSettings(), **given)
    settings.validate()
    return settings
