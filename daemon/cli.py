"""mididuet: a MIDI improvisation partner. Play a keyboard; it listens and answers.

Subcommands are registered in :data:`COMMANDS`, one :class:`Command` each (its arguments
and the function that runs it), so adding one (``generate``, ``demo``, ``service``...)
touches nothing else. The engine's settings come from one declarative table,
:data:`SETTING_OPTIONS`, which the TOML loader can share.

Any :class:`~daemon.errors.MididuetError` becomes one line on stderr and exit code 2:
a user never sees a traceback for a known problem.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon.errors import MididuetError
from daemon.settings import MODES, SAMPLINGS, EngineSettings

EXIT_USAGE = 2
LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class SettingOption:
    """One engine setting as a command-line flag (and, later, a TOML key: ``field``)."""

    field: str  # the EngineSettings attribute
    flag: str
    help: str
    type: Callable[[str], Any] | None = None  # None: an on/off switch
    choices: tuple[str, ...] | None = None
    metavar: str | None = None


SETTING_OPTIONS: tuple[SettingOption, ...] = (
    SettingOption("mode", "--mode", "duet: answer each phrase; jam: play along at the pulse; "
                  "solo: play on its own", str, MODES),
    SettingOption("chord_window_ms", "--chord-window", "notes starting within this many ms form one chord",
                  float, metavar="MS"),
    SettingOption("phrase_gap_ms", "--phrase-gap", "duet: silence (no key or pedal held) that ends a phrase",
                  float, metavar="MS"),
    SettingOption("answer_tokens", "--answer-tokens", "duet: answer length in tokens "
                  "(default: about as long as the call)", int, metavar="N"),
    SettingOption("sampling", "--sampling", "how the next token is chosen; greedy reproduces the "
                  "notebook and may loop", str, SAMPLINGS),
    SettingOption("temperature", "--temperature", "higher: more adventurous choices", float, metavar="T"),
    SettingOption("top_p", "--top-p", "top-p sampling keeps the likeliest tokens up to this mass",
                  float, metavar="P"),
    SettingOption("seed", "--seed", "random seed, for repeatable runs", int, metavar="N"),
    SettingOption("bpm", "--bpm", "fixed pulse in beats per minute (default: follow the player)",
                  float, metavar="BPM"),
    SettingOption("follow_clock", "--clock", "follow incoming MIDI clock (24 ticks per quarter)"),
    SettingOption("velocity", "--velocity", "fixed velocity 1..127 (default: follow the player)",
                  int, metavar="V"),
    SettingOption("channel", "--channel", "output channel 1..16", int, metavar="CH"),
    SettingOption("channel_in", "--channel-in", "listen to this channel only (default: all)",
                  int, metavar="CH"),
    SettingOption("thru", "--thru", "also forward the player's notes to the output"),
    SettingOption("cc_temperature", "--cc-temperature", "CC number whose value sets the temperature",
                  int, metavar="CC"),
    SettingOption("cc_mode", "--cc-mode", "CC number that switches mode",
                  int, metavar="CC"),
    SettingOption("cc_mute", "--cc-mute", "CC number that mutes the answers",
                  int, metavar="CC"),
    SettingOption("cc_panic", "--cc-panic", "CC number that releases every note mididuet holds",
                  int, metavar="CC"),
)


def add_setting_options(parser: argparse.ArgumentParser) -> None:
    """Add a flag per engine setting. Unset flags stay absent from the namespace (SUPPRESS),
    so defaults come from EngineSettings alone and a TOML file can sit in between."""
    defaults = EngineSettings()
    group = parser.add_argument_group("engine settings")
    for opt in SETTING_OPTIONS:
        default = getattr(defaults, opt.field)
        shown = "" if default is None else f" (default: {default})"
        if opt.type is None:
            group.add_argument(opt.flag, dest=opt.field, action="store_true", default=argparse.SUPPRESS,
                               help=opt.help)
        else:
            group.add_argument(opt.flag, dest=opt.field, type=opt.type, choices=opt.choices,
                               metavar=opt.metavar, default=argparse.SUPPRESS, help=opt.help + shown)


def settings_from_args(args: argparse.Namespace, base: EngineSettings | None = None) -> EngineSettings:
    """``base`` (default: the defaults) with the flags given applied. Raises ``ValueError``."""
    given = {opt.field: getattr(args, opt.field) for opt in SETTING_OPTIONS if hasattr(args, opt.field)}
    settings = dataclasses.replace(base or EngineSettings(), **given)
    settings.validate()
    return settings


@dataclass(frozen=True)
class Command:
    """A subcommand: its name, help, how it adds its arguments, and what it runs."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, argparse.ArgumentParser], int]
    description: str | None = None
    epilog: str | None = None


def add_api_option(parser: argparse.ArgumentParser) -> None:
    from daemon.ports import APIS  # light: ports imports mido and rtmidi only

    parser.add_argument("--api", choices=tuple(APIS), help="MIDI API (default: MIDO_BACKEND's API, "
                        "else the platform's: alsa on Linux, coremidi on macOS, winmm on Windows)")


# --- ports ---------------------------------------------------------------------------------
def _ports_arguments(parser: argparse.ArgumentParser) -> None:
    add_api_option(parser)


def _ports(args: argparse.Namespace, _parser: argparse.ArgumentParser) -> int:
    from daemon import ports

    api = ports.select_api(args.api)
    inputs, outputs = ports.list_ports(api)
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
def _run_arguments(parser: argparse.ArgumentParser) -> None:
    ports_group = parser.add_argument_group("ports and model")
    ports_group.add_argument("--in", dest="in_port", metavar="NAME",
                             help="input port (your keyboard): a case-insensitive part of its name, "
                             "or re:REGEX (default: a virtual port 'mididuet in')")
    ports_group.add_argument("--out", dest="out_port", metavar="NAME",
                             help="output port (a synth or DAW), matched like --in "
                             "(default: a virtual port 'mididuet out')")
    add_api_option(ports_group)
    ports_group.add_argument("--model", type=Path, metavar="FILE",
                             help="model bundle (.onnx) (default: the shipped Chopin model)")
    ports_group.add_argument("--primer", type=Path, metavar="FILE.mid",
                             help="MIDI file whose tokens fill the window before you play (solo starts from it)")
    add_setting_options(parser)
    out = parser.add_argument_group("recording and diagnostics")
    out.add_argument("--record", type=Path, metavar="DIR",
                     help="write each session to DIR/mididuet-DATE-TIME.mid (player and mididuet tracks)")
    out.add_argument("--stats", nargs="?", type=float, const=10.0, metavar="SECONDS",
                     help="print decision time and lateness p50/p99/max every SECONDS (default 10) and at exit")
    out.add_argument("--rt-priority", type=int, default=5, metavar="N",
                     help="real-time (SCHED_FIFO) priority of the playing loop, 0 for none; below JACK's "
                     "(default 5; without permission mididuet carries on at normal priority)")


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from daemon.runner import RunOptions, run

    try:
        settings = settings_from_args(args)
    except ValueError as err:
        parser.error(str(err))  # exits 2 with usage: a bad flag value is a usage error
    if not 0 <= args.rt_priority <= 99:
        parser.error("--rt-priority must be in range 0..99")
    if args.stats is not None and args.stats <= 0:
        parser.error("--stats interval must be positive")
    primer = None
    if args.primer is not None:
        from daemon.midi_reader import MidiReadError, read_tokens

        try:
            primer = read_tokens(args.primer)
        except (MidiReadError, OSError) as err:
            raise MididuetError(f"--primer {args.primer}: {err}") from err
    options = RunOptions(settings=settings, model=args.model, primer=primer, in_port=args.in_port,
                         out_port=args.out_port, api=args.api, record_dir=args.record,
                         stats_interval_s=args.stats, rt_priority=args.rt_priority)
    return run(options)


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

stop with Ctrl-C or SIGTERM: every note mididuet holds is released first.
"""


# --- generate, demo: the engine in simulated time ----------------------------------------
def _simulated(module_name: str) -> tuple[Callable[[argparse.ArgumentParser], None],
                                          Callable[[argparse.Namespace, argparse.ArgumentParser], int]]:
    """Arguments and runner of a command that plays the engine in simulated time."""
    import importlib

    def add(parser: argparse.ArgumentParser) -> None:
        importlib.import_module(module_name).add_arguments(parser)
        add_setting_options(parser)

    def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
        try:
            settings = settings_from_args(args)
        except ValueError as err:
            parser.error(str(err))
        try:
            return importlib.import_module(module_name).run(args, settings)
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
    Command("run", "listen on a port and play answers on another", _run_arguments, _run,
            description="Listen to a keyboard, predict, and play answers in real time.", epilog=RUN_EPILOG),
    Command("generate", "write a MIDI file: mididuet's answer to a primer, or a solo", *_simulated("daemon.generate"),
            description="Generate a standard MIDI file with the same engine and options as `run`, "
            "in simulated time: the primer on track 1, mididuet's answer on track 2.", epilog=GENERATE_EPILOG),
    Command("demo", "hear and see a duet without a keyboard (MIDI, piano roll, WAV)", *_simulated("daemon.demo"),
            description="Play a short phrase to mididuet in simulated time and write what happened: "
            "duet.mid, duet.png (a piano roll) and duet.wav (with FluidSynth).", epilog=DEMO_EPILOG),
]


def build_parser(commands: list[Command] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mididuet", description=__doc__.split("\n\n")[0],
                                     epilog="run `mididuet COMMAND --help` for a command's options",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--log-level", choices=LOG_LEVELS, default="warning",
                        help="how much to log on stderr (default: warning)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in commands or COMMANDS:
        child = sub.add_parser(command.name, help=command.help, description=command.description or command.help,
                               epilog=command.epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
        # Also accepted after the subcommand, where people tend to type it.
        child.add_argument("--log-level", choices=LOG_LEVELS, default=argparse.SUPPRESS,
                           help="how much to log on stderr (default: warning)")
        command.add_arguments(child)
        child.set_defaults(_command=command, _parser=child)
    return parser


def main(argv: list[str] | None = None) -> int:
    """The ``mididuet`` console script. Returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
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


if __name__ == "__main__":
    sys.exit(main())
