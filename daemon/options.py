"""Every ``run`` option, declared once: its flag, TOML key, type, default, check and help.

gunicorn's habit: one :class:`Option` per setting, and everything else is built from the
tables — the ``run`` flags (:mod:`daemon.cli`), the TOML config loader and the example
config (:mod:`daemon.config`). A TOML key is the flag without its two dashes
(``--phrase-gap`` ↔ ``phrase-gap``), so what a musician learns on the command line works
in the file.

- :data:`SETTING_OPTIONS`: the engine's settings, one per :class:`EngineSettings` field;
  their defaults and range checks are ``EngineSettings``'s own.
- :data:`RUN_OPTIONS`: ports, model, recording and service behaviour, with defaults and
  checks here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon.settings import MODES, SAMPLINGS, EngineSettings

LOG_LEVELS = ("debug", "info", "warning", "error")
APIS = ("jack", "alsa", "coremidi", "winmm")  # daemon.ports.APIS's keys; kept light to import
RT_PRIORITY_RANGE = (0, 99)
RETRY_RANGE_S = (0.05, 60.0)
DEFAULT_RETRY_S = 2.0
DEFAULT_RT_PRIORITY = 5
SERVICE_STATS_S = 600.0  # under systemd a summary line every 10 minutes, unless told otherwise


@dataclass(frozen=True)
class Option:
    """One option of ``mididuet run``.

    ``type`` converts a flag's text (``int``, ``float``, ``str``, ``Path``) and decides the
    TOML type (int; int or float; string; string); None is an on/off switch (TOML bool).
    ``check`` raises ``ValueError`` for a value outside what is allowed (engine settings
    are checked by ``EngineSettings.validate`` instead). ``example`` is shown, commented
    out, in the example config when the default is None.
    """

    dest: str  # the EngineSettings field, or the RunConfig attribute
    flag: str
    help: str
    type: Callable[[str], Any] | None = None
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    default: Any = None
    check: Callable[[Any], None] | None = None
    example: Any = None
    default_text: str | None = None  # what None means, in words, for help and the example
    const: Any = None  # a flag that may be given without a value takes this one (--stats)

    @property
    def key(self) -> str:
        return self.flag.removeprefix("--")

    @property
    def allowed(self) -> str:
        """What the TOML value may be, in words (for error messages)."""
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        return {None: "true or false", int: "an integer", float: "a number",
                str: "a string", Path: "a path (a string)"}[self.type]


def _range(name: str, low: float, high: float) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        if not low <= value <= high:
            raise ValueError(f"{name} must be in range {low:g}..{high:g}, got {value!r}")
    return check


def _positive(name: str) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        if value <= 0:
            raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    return check


SETTING_OPTIONS: tuple[Option, ...] = (
    Option("mode", "--mode", "duet: answer each phrase; jam: play along at the pulse; "
           "solo: play on its own", str, MODES),
    Option("chord_window_ms", "--chord-window", "notes starting within this many ms form one chord",
           float, metavar="MS"),
    Option("phrase_gap_ms", "--phrase-gap", "duet: silence in ms (no key or pedal held) that ends a phrase",
           float, metavar="MS"),
    Option("answer_tokens", "--answer-tokens", "duet: answer length in tokens",
           int, metavar="N", example=16, default_text="about as long as the call"),
    Option("sampling", "--sampling", "how the next token is chosen; greedy reproduces the "
           "notebook and may loop", str, SAMPLINGS),
    Option("temperature", "--temperature", "higher: more adventurous choices", float, metavar="T"),
    Option("top_p", "--top-p", "top-p sampling keeps the likeliest tokens up to this mass",
           float, metavar="P"),
    Option("seed", "--seed", "random seed, for repeatable runs", int, metavar="N", example=1,
           default_text="a new one each run"),
    Option("bpm", "--bpm", "fixed pulse in beats per minute", float, metavar="BPM", example=96.0,
           default_text="follow the player"),
    Option("follow_clock", "--clock", "follow incoming MIDI clock (24 ticks per quarter)"),
    Option("velocity", "--velocity", "fixed velocity 1..127", int, metavar="V", example=80,
           default_text="follow the player"),
    Option("channel", "--channel", "output channel 1..16", int, metavar="CH"),
    Option("channel_in", "--channel-in", "listen to this channel only", int, metavar="CH", example=1,
           default_text="all channels"),
    Option("thru", "--thru", "also forward the player's notes to the output"),
    Option("cc_temperature", "--cc-temperature", "CC number whose value sets the temperature",
           int, metavar="CC"),
    Option("cc_mode", "--cc-mode", "CC number that switches mode", int, metavar="CC"),
    Option("cc_mute", "--cc-mute", "CC number that mutes the answers", int, metavar="CC"),
    Option("cc_panic", "--cc-panic", "CC number that releases every note mididuet holds", int, metavar="CC"),
)

RUN_OPTIONS: tuple[Option, ...] = (
    Option("in_port", "--in", "input port (your keyboard): a case-insensitive part of its name, or re:REGEX",
           str, metavar="NAME", example="keystation", default_text="a virtual port 'mididuet in'"),
    Option("out_port", "--out", "output port (a synth or DAW), matched like in",
           str, metavar="NAME", example="fluid", default_text="a virtual port 'mididuet out'"),
    Option("api", "--api", "MIDI API", str, APIS, example="jack",
           default_text="MIDO_BACKEND's API, else alsa on Linux, coremidi on macOS, winmm on Windows"),
    Option("model", "--model", "model bundle (.onnx)", Path, metavar="FILE",
           example="~/models/mine.onnx", default_text="the shipped Chopin model"),
    Option("primer", "--primer", "MIDI file whose tokens fill the window before you play "
           "(solo starts from it)", Path, metavar="FILE.mid", example="~/midi/nocturne.mid",
           default_text="none"),
    Option("record", "--record", "write each session to DIR/mididuet-DATE-TIME.mid", Path,
           metavar="DIR", example="~/mididuet-sessions", default_text="no recording"),
    Option("stats", "--stats", "a summary line (notes, answers, decision time and lateness "
           "p50/p99) every SECONDS and at exit", float, metavar="SECONDS", check=_positive("stats"),
           example=600.0, const=10.0, default_text=f"every {SERVICE_STATS_S:g} s under systemd, else off"),
    Option("rt_priority", "--rt-priority", "real-time (SCHED_FIFO) priority of the playing loop, "
           "0 for none; below JACK's", int, metavar="N", default=DEFAULT_RT_PRIORITY,
           check=_range("rt-priority", *RT_PRIORITY_RANGE)),
    Option("wait", "--wait", "wait for a missing port instead of stopping with an error",
           example=True, default_text="yes under systemd, no in a terminal"),
    Option("retry", "--retry", "seconds between looks for a lost or missing port", float,
           metavar="SECONDS", default=DEFAULT_RETRY_S, check=_range("retry", *RETRY_RANGE_S)),
    Option("log_level", "--log-level", "how much to log on stderr", str, LOG_LEVELS, example="debug",
           default_text="info"),
)

ALL_OPTIONS: tuple[Option, ...] = RUN_OPTIONS + SETTING_OPTIONS
OPTIONS_BY_KEY: dict[str, Option] = {opt.key: opt for opt in ALL_OPTIONS}


def option_default(opt: Option) -> Any:
    """The default of an option: EngineSettings's for an engine setting, else the table's."""
    if opt in SETTING_OPTIONS:
        return getattr(EngineSettings(), opt.dest)
    return opt.default
