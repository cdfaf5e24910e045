"""mididuet: a MIDI improvisation partner. Play a keyboard; it listens and answers.

Subcommands are registered in :data:`COMMANDS`, one :class:`Command` each (its arguments
and the function that runs it), so adding one touches nothing else. ``run``'s options come
from the declared settings (:mod:`.engine.settings`, :mod:`.live.options`), shared with
the TOML config (:mod:`.service.config`): flags override the file, the file overrides
the defaults. Each command imports what it needs when it runs, so ``mididuet ports``
never loads onnxruntime and ``mididuet run`` never loads the offline tools.

Any :class:`~.errors.MididuetError` becomes one line on stderr and exit code 2:
a user never sees a traceback for a known problem.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from .errors import MididuetError
from .live.options import LOG_LEVELS
from .service.flags import add_run_flags, add_setting_flags, settings_from_args

EXIT_USAGE = 2


@dataclass(frozen=True)
class Command:
    """A subcommand: its name, help, how it adds its arguments, and what it runs."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, argparse.ArgumentParser], int]
    description: str | None = None
    epilog: str | None = None


# --- ports ---------------------------------------------------------------------------------
def _ports_arguments(parser: argparse.ArgumentParser) -> None:
    from .ports.api import APIS

    parser.add_argument("--api", choices=tuple(APIS), help="MIDI API (default: MIDO_BACKEND's API, "
                        "else the platform's: alsa on Linux, coremidi on macOS, winmm on Windows)")


def _ports(args: argparse.Namespace, _parser: argparse.ArgumentParser) -> int:
    from .ports.api import select_api
    from .ports.listing import list_ports

    api = select_api(args.api)
    inputs, outputs = list_ports(api)
    print(f"MIDI API: {api.name}")
    for title, names, flag in (("inputs", inputs, "--in"), ("outputs", outputs, "--out")):
        print(f"{title} (for {flag}):")
        for name in names:
            print(f"  {name}")
        if not names:
            print("  (none)")
    return 0


PORTS_EPILOG = """\
examples:
  mididuet ports                 # with the platform's MIDI API
  mididuet ports --api jack      # JACK (on Linux, ALSA is the default)
  MIDO_BACKEND=mido.backends.rtmidi/UNIX_JACK mididuet ports
"""


# --- run -----------------------------------------------------------------------------------
def _run(args: argparse.Namespace, _parser: argparse.ArgumentParser) -> int:
    from .service import launch

    return launch.run(args)  # raises ConfigError: exit 2, nothing opened


RUN_EPILOG = """\
port names: a case-insensitive part of the name ("keystation"), or a regular
expression after re: ("re:^fluid.*:midi_00$"). See them with `mididuet ports`.
With no --in/--out, mididuet opens virtual ports 'mididuet in' and 'mididuet out'
for you to connect (not on Windows: there name ports or install loopMIDI).

examples:
  mididuet run --in keystation --out fluid           # duet with a synth
  mididuet run --api jack --in "system:midi_capture_1" --out fsynth
  mididuet run --mode jam --bpm 96 --channel 2       # play along at 96 BPM on channel 2
  mididuet run --mode solo --primer nocturne.mid     # background music
  mididuet run --sampling greedy --seed 1 --record ~/sessions --stats

config: every option is also a key of a TOML file (the flag without its dashes),
read from --config FILE or $XDG_CONFIG_HOME/mididuet/config.toml; flags win.

signals: Ctrl-C or SIGTERM stops (every note mididuet holds is released first);
SIGHUP reloads the config and the model without closing the ports (a refused
model is logged and the old one keeps playing).

ports that go: a named port that disappears is looked for again every --retry
seconds and reconnected when it is back. A port missing at start is an error in a
terminal; with --wait (the default under systemd) mididuet waits for it.
"""


# --- config, service -------------------------------------------------------------------------
def _config_arguments(parser: argparse.ArgumentParser) -> None:
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--example", action="store_true", help="print the example config: every key, "
                      "its default and what it does")
    what.add_argument("--path", action="store_true", help="print where mididuet looks for its config")
    what.add_argument("--check", nargs="?", type=Path, const=True, metavar="FILE",
                      help="check a config file (default: the one at --path); exit 2 naming the first problem")


def _config(args: argparse.Namespace, _parser: argparse.ArgumentParser) -> int:
    from .service import config

    if args.example:
        sys.stdout.write(config.example_config())
        return 0
    path = config.default_config_path()
    if args.path:
        print(path)
        return 0
    checked = path if args.check is True else args.check
    values = config.read_config(checked)
    # As `run` would: keys that are fine alone may still exclude each other (bpm and clock).
    config.resolve(argparse.Namespace(config=checked))
    print(f"{checked}: ok ({len(values)} keys set)")
    return 0


def _service_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub.add_parser("install", help="write the systemd user unit and the config (an existing config is kept)")
    sub.add_parser("unit", help="print the user unit that install writes")


def _service(args: argparse.Namespace, _parser: argparse.ArgumentParser) -> int:
    from .service import systemd

    if args.action == "unit":
        sys.stdout.write(systemd.render_unit(systemd.script_path()))
    else:
        print(systemd.install())
    return 0


# --- watch, status: a running mididuet, over its control socket ------------------------------
def _control_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--control", metavar="NAME", help="the control socket of the mididuet to talk to, as "
                        "given to its run --control: a name in $XDG_RUNTIME_DIR/mididuet/ or a path "
                        "(default: control.sock there, run's default)")


def _status_arguments(parser: argparse.ArgumentParser) -> None:
    _control_argument(parser)
    parser.add_argument("--json", action="store_true", help="the whole status as one JSON object, for scripts")


def _watch(args: argparse.Namespace, _parser: argparse.ArgumentParser) -> int:
    from .watch import app, client

    return app.run(client.resolve(args.control))


def _status(args: argparse.Namespace, _parser: argparse.ArgumentParser) -> int:
    from .watch import client, status

    return status.run(client.resolve(args.control), args.json)


WATCH_EPILOG = """\
keys: d j s (mode duet, jam, solo), m (next mode), + and - (temperature),
space (mute), p (panic: release every note), q (quit).

examples:
  mididuet watch                     # the mididuet running here, terminal or service
  mididuet watch --control second    # one started with `mididuet run --control second`
  mididuet status --json | jq .controls
"""


# --- generate, demo: the engine in simulated time ----------------------------------------
def _generate_module() -> ModuleType:
    from .offline import generate

    return generate


def _demo_module() -> ModuleType:
    from .offline import demo

    return demo


def _simulated(module: Callable[[], ModuleType]) -> tuple[Callable[[argparse.ArgumentParser], None],
                                                         Callable[[argparse.Namespace, argparse.ArgumentParser], int]]:
    """Arguments and runner of a command that plays the engine in simulated time;
    ``module`` imports the command's module (only when the command is chosen)."""
    def add(parser: argparse.ArgumentParser) -> None:
        module().add_arguments(parser)
        add_setting_flags(parser)

    def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
        try:
            settings = settings_from_args(args)
        except ValueError as err:
            parser.error(str(err))
        try:
            return module().run(args, settings)
        except ValueError as err:
            parser.error(str(err))

    return add, run


GENERATE_EPILOG = """\
examples:
  mididuet generate --out answer.mid                          # 64 tokens of solo, 120 BPM
  mididuet generate --primer my-phrase.mid --tokens 32 --out answer.mid
  mididuet generate --primer p.mid --sampling greedy --out g.mid   # the notebook's argmax (may loop)
"""

DEMO_EPILOG = """\
examples:
  mididuet demo                                   # writes ./mididuet-demo/duet.{mid,png,wav}
  mididuet demo --primer my-phrase.mid --seed 5   # answer your own phrase
  mididuet demo --sampling greedy --out-dir /tmp/greedy
"""


COMMANDS: list[Command] = [
    Command("ports", "list MIDI inputs and outputs, with the MIDI API in use",
            _ports_arguments, _ports, epilog=PORTS_EPILOG),
    Command("run", "listen on a port and play answers on another", add_run_flags, _run,
            description="Listen to a keyboard, predict, and play answers in real time.", epilog=RUN_EPILOG),
    Command("watch", "see a running mididuet live (piano roll, mode, timing) and steer it from the keyboard",
            _control_argument, _watch, description="A live view of a running mididuet, in a terminal or as a "
            "service, over its control socket.", epilog=WATCH_EPILOG),
    Command("status", "print a running mididuet's state: mode, ports, pulse, timing", _status_arguments, _status,
            description="A one-shot summary of a running mididuet (--json for scripts).", epilog=WATCH_EPILOG),
    Command("config", "print the example config, its path, or check a config file", _config_arguments, _config,
            description="mididuet reads run's options from a TOML file; flags override it."),
    Command("service", "run mididuet at login: install the systemd user unit", _service_arguments, _service,
            description="Install mididuet as a systemd user service (see docs/service.md)."),
    Command("generate", "write a MIDI file: mididuet's answer to a primer, or a solo", *_simulated(_generate_module),
            description="Generate a standard MIDI file with the same engine and options as `run`, "
            "in simulated time: the primer on track 1, mididuet's answer on track 2.", epilog=GENERATE_EPILOG),
    Command("demo", "hear and see a duet without a keyboard (MIDI, piano roll, WAV)", *_simulated(_demo_module),
            description="Play a short phrase to mididuet in simulated time and write what happened: "
            "duet.mid, duet.png (a piano roll) and duet.wav (with FluidSynth).", epilog=DEMO_EPILOG),
]


def build_parser(only: str | None = None, commands: list[Command] | None = None) -> argparse.ArgumentParser:
    """The parser; with ``only``, just that command gets its arguments (the others are
    listed with their help), so what a command imports to describe itself is imported
    only when it is the one run."""
    parser = argparse.ArgumentParser(prog="mididuet", description=__doc__.split("\n\n")[0],
                                     epilog="run `mididuet COMMAND --help` for a command's options",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--log-level", choices=LOG_LEVELS, default=argparse.SUPPRESS,
                        help="how much to log on stderr (default: info for run, else warning)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in commands or COMMANDS:
        child = sub.add_parser(command.name, help=command.help, description=command.description or command.help,
                               epilog=command.epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
        # Also accepted after the subcommand, where people tend to type it.
        child.add_argument("--log-level", choices=LOG_LEVELS, default=argparse.SUPPRESS,
                           help="how much to log on stderr (default: info for run, else warning; "
                           "run also reads log-level from its config)")
        if only is None or only == command.name:
            command.add_arguments(child)
        child.set_defaults(_command=command, _parser=child)
    return parser


def command_name(argv: list[str]) -> str | None:
    """The subcommand named in ``argv`` (the first word that is neither an option nor
    the global ``--log-level``'s value), or None."""
    words = iter(argv)
    for word in words:
        if word == "--log-level":
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def main(argv: list[str] | None = None) -> int:
    """The ``mididuet`` console script. Returns the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(only=command_name(argv))
    args = parser.parse_args(argv)
    level = getattr(args, "log_level", None) or ("info" if getattr(args, "command", None) == "run" else "warning")
    logging.basicConfig(level=level.upper(), stream=sys.stderr,
                        format="mididuet: %(levelname)s %(name)s: %(message)s")
    if not hasattr(args, "_command"):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return args._command.run(args, args._parser)
    except MididuetError as err:
        print(f"mididuet: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # only before the runner installs its handlers
        return 130
