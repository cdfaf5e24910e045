"""Settings, each declared once: its field, flag, TOML key, type, check, default and help.

gunicorn's habit, done with dataclass fields: :func:`setting` puts a :class:`Setting`
in a field's metadata, and everything else is built from the fields — the flags
(:mod:`..service.flags`), the TOML loader and the example config
(:mod:`..service.config`), the checks (:func:`check_fields`) and the record itself. A
TOML key is the flag without its two dashes (``--phrase-gap`` ↔ ``phrase-gap``), so what
a musician learns on the command line works in the file.

:class:`EngineSettings` holds how the engine listens, samples and plays; the options of
``mididuet run`` beyond it are :class:`..live.options.RunOptions`, declared the same way.

Default control numbers: CC 21–26 lie in the MIDI 1.0 "undefined" block (20–31), so they
never collide with standard controllers (modulation, volume, sustain, all-notes-off), and
many controllers send CC 21 and up from their first knobs or pads by default.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..music.midi import CHANNELS, HIGHEST_CONTROLLER, MAX_DATA, SUSTAIN

MODES = ("duet", "jam", "solo")
SAMPLINGS = ("greedy", "temperature", "top-p")
RHYTHMS = ("expressive", "pulse")
# Both tuned on music the figures are not reported on (docs/model-quality.md): the memory's
# weight for the NLL of pieces outside the split, the rhythm's temperature for answers to the
# training pieces' phrases whose rhythm is closest to Chopin's.
DEFAULT_MEMORY = 0.9
DEFAULT_RHYTHM_TEMPERATURE = 0.7
MAX_ANSWER_TOKENS = 256
HOW_IT_PLAYS = "how it plays"
_SETTING = "mididuet.setting"  # the dataclass field metadata key

Check = Callable[[Any], None]  # raises ValueError("must be ..., got ..."), without the name


@dataclass(frozen=True)
class Setting:
    """How one field is offered to the user.

    ``type`` converts a flag's text (``int``, ``float``, ``str``, ``Path``) and decides the
    TOML type (int; int or float; string; string); None is an on/off switch (TOML bool).
    ``check`` raises ``ValueError`` for a value outside what is allowed. ``example`` is
    shown, commented out, in the example config when the default is None;
    ``default_text`` says in words what a None default means. ``const``: a flag that may
    be given without a value takes this one (``--stats``). ``under_systemd``: the default
    when running as a systemd service, if it differs.
    """

    flag: str
    help: str
    type: Callable[[str], Any] | None = None
    choices: tuple[str, ...] | None = None
    check: Check | None = None
    metavar: str | None = None
    example: Any = None
    default_text: str | None = None
    const: Any = None
    group: str = HOW_IT_PLAYS
    under_systemd: Any = None

    @property
    def key(self) -> str:
        return self.flag.removeprefix("--")

    def allowed(self, quote: Callable[[str], str] = str) -> str:
        """What a value may be, in words (``quote`` renders each choice)."""
        if self.choices:
            return "one of " + ", ".join(quote(c) for c in self.choices)
        return {None: "true or false", int: "an integer", float: "a number",
                str: "a string", Path: "a path (a string)"}[self.type]

    def refuse(self, value: Any) -> None:
        """``ValueError("must be ..., got ...")`` (no name: the caller says which) when
        ``value`` is not allowed; None is always allowed where the default is None."""
        if self.choices and value not in self.choices:
            raise ValueError(f"must be {self.allowed()}, got {value!r}")
        if self.check is not None:
            self.check(value)


@dataclass(frozen=True)
class Declared:
    """A declared field: its name, default and :class:`Setting`."""

    name: str
    default: Any
    setting: Setting


def setting(default: Any, flag: str, help: str, type: Callable[[str], Any] | None = None, **how: Any) -> Any:
    """A dataclass field with its :class:`Setting` (``how``: the other Setting fields)."""
    return dataclasses.field(default=default, metadata={_SETTING: Setting(flag, help, type, **how)})


def declared(cls: type) -> tuple[Declared, ...]:
    """The declared fields of a settings dataclass, in declaration order."""
    return tuple(Declared(f.name, f.default, f.metadata[_SETTING])
                 for f in dataclasses.fields(cls) if _SETTING in f.metadata)


def check_fields(record: Any) -> None:
    """Check each declared field of ``record`` on its own; ``ValueError`` naming the first bad one."""
    for d in declared(type(record)):
        value = getattr(record, d.name)
        if value is None and d.default is None:
            continue
        try:
            _check_type(d.setting, value)
            d.setting.refuse(value)
        except ValueError as err:
            raise ValueError(f"{d.name} {err}") from None


def _check_type(s: Setting, value: Any) -> None:
    kind = s.type
    ok = (isinstance(value, bool) if kind is None else
          not isinstance(value, bool) and isinstance(value, int) if kind is int else
          not isinstance(value, bool) and isinstance(value, int | float) if kind is float else True)
    if not ok:
        raise ValueError(f"must be {s.allowed()}, got {value!r}")


# --- checks ----------------------------------------------------------------------------------
def in_range(low: float, high: float) -> Check:
    def check(value: Any) -> None:
        if not low <= value <= high:
            raise ValueError(f"must be in range {low:g}..{high:g}, got {value!r}")
    check.bounds = (low, high)  # type: ignore[attr-defined]  # the live controls show the range
    return check


def int_in_range(low: int, high: int) -> Check:
    def check(value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"must be an integer in range {low}..{high}, got {value!r}")
    return check


def fraction(value: Any) -> None:
    if not 0.0 < value <= 1.0:
        raise ValueError(f"must be in range (0, 1], got {value!r}")


def non_negative_int(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"must be a non-negative integer, got {value!r}")


def positive_seconds(value: Any) -> None:
    if value <= 0:
        raise ValueError(f"must be a positive number of seconds, got {value!r}")


def controller(value: Any) -> None:
    int_in_range(0, HIGHEST_CONTROLLER)(value)  # 120..127 are channel mode messages
    if value == SUSTAIN:
        raise ValueError(f"must not be {SUSTAIN}: that is the sustain pedal")


midi_channel = int_in_range(1, CHANNELS)


# --- the engine's settings ------------------------------------------------------------------
@dataclass
class EngineSettings:
    """How the engine listens, samples and plays (see README "Options"). Every default
    works for a musician who names no option."""

    mode: str = setting("duet", "--mode", "duet: answer each phrase; jam: play along at the pulse; "
                        "solo: play on its own", str, choices=MODES)
    chord_window_ms: float = setting(40.0, "--chord-window", "notes starting within this many ms form one chord",
                                     float, check=in_range(0.0, 500.0), metavar="MS")
    phrase_gap_ms: float = setting(600.0, "--phrase-gap", "duet: silence in ms (no key or pedal held) that ends "
                                   "a phrase", float, check=in_range(50.0, 10_000.0), metavar="MS")
    answer_tokens: int | None = setting(None, "--answer-tokens", "duet: answer length in tokens", int,
                                        check=int_in_range(1, MAX_ANSWER_TOKENS), metavar="N", example=16,
                                        default_text="about as long as the call")
    # Temperature 1.0 with the loop guard: never stuck in a riff (greedy may loop), and in
    # long solos the closest to Chopin's pitch classes; top-p 0.95 narrowed them to half the
    # tokens, and duet answers measured alike (docs/model-quality.md, decoding).
    sampling: str = setting("temperature", "--sampling", "how the next token is chosen; greedy reproduces the "
                            "notebook and may loop", str, choices=SAMPLINGS)
    temperature: float = setting(1.0, "--temperature", "higher: more adventurous choices", float,
                                 check=in_range(0.05, 5.0), metavar="T")
    # With --sampling top-p: 0.95 trims only the improbable tail; 0.9 kept too little.
    top_p: float = setting(0.95, "--top-p", "top-p sampling keeps the likeliest tokens up to this mass", float,
                           check=fraction, metavar="P")
    rhythm: str = setting("expressive", "--rhythm", "expressive: each token when, as long and as loud as the "
                          "model predicts, chords voiced as predicted; pulse: one token per pulse, 0.9 of it long, "
                          "at your velocity, chords close to your hand (a model without the expressive heads "
                          "always plays the pulse)", str, choices=RHYTHMS)
    rhythm_temperature: float = setting(DEFAULT_RHYTHM_TEMPERATURE, "--rhythm-temperature", "steadiness: how "
                                        "freely the timing and the loudness vary: lower keeps to the likeliest "
                                        "rhythm and dynamics (steadier), higher is looser", float,
                                        check=in_range(0.05, 5.0), metavar="T")
    # Chopin's notes, the pedal applied, almost all sound until the next one begins
    # (docs/model-quality.md); a length drawn before that next onset is known often did not.
    legato: bool = setting(True, "--legato", "expressive: a note drawn to stop before mididuet's next one begins "
                           "is drawn again from the lengths that reach it, as under the pedal; --no-legato plays "
                           "each length as first drawn")
    memory: float = setting(DEFAULT_MEMORY, "--memory", "how much the session memory (what this session played, "
                            "yours and its own) weighs beside the model, times the memory's confidence: 0 leaves "
                            "it out", float, check=in_range(0.0, 1.0), metavar="W")
    seed: int | None = setting(None, "--seed", "random seed, for repeatable runs", int, check=non_negative_int,
                               metavar="N", example=1, default_text="a new one each run")
    bpm: float | None = setting(None, "--bpm", "fixed pulse in beats per minute", float, check=in_range(20.0, 400.0),
                                metavar="BPM", example=96.0, default_text="follow the player")
    follow_clock: bool = setting(False, "--clock", "follow incoming MIDI clock (24 ticks per quarter)")
    velocity: int | None = setting(None, "--velocity", "fixed velocity 1..127", int,
                                   check=int_in_range(1, MAX_DATA), metavar="V", example=80,
                                   default_text="follow the player")
    channel: int = setting(1, "--channel", "output channel 1..16", int, check=midi_channel, metavar="CH")
    channel_in: int | None = setting(None, "--channel-in", "listen to this channel only", int, check=midi_channel,
                                     metavar="CH", example=1, default_text="all channels")
    thru: bool = setting(False, "--thru", "also forward the player's notes to the output")
    cc_temperature: int = setting(21, "--cc-temperature", "CC number whose value sets the temperature", int,
                                  check=controller, metavar="CC")
    cc_mode: int = setting(22, "--cc-mode", "CC number that switches mode", int, check=controller, metavar="CC")
    cc_mute: int = setting(23, "--cc-mute", "CC number that mutes the answers", int, check=controller, metavar="CC")
    cc_panic: int = setting(24, "--cc-panic", "CC number that releases every note mididuet holds", int,
                            check=controller, metavar="CC")
    cc_rhythm: int = setting(25, "--cc-rhythm", "CC number whose value sets the rhythm temperature", int,
                             check=controller, metavar="CC")
    cc_memory: int = setting(26, "--cc-memory", "CC number whose value sets the memory's weight", int,
                             check=controller, metavar="CC")

    def validate(self) -> None:
        """Raise ``ValueError`` for the first field outside its allowed values, or for
        fields that exclude each other."""
        check_fields(self)
        if self.bpm is not None and self.follow_clock:
            raise ValueError("bpm and follow_clock exclude each other: choose one pulse")
        controls = self.controls()
        if len(set(controls.values())) != len(controls):
            raise ValueError(f"{', '.join(CONTROL_FIELDS[:-1])} and {CONTROL_FIELDS[-1]} must differ, got {controls}")

    def controls(self) -> dict[str, int]:
        """The control numbers by field name."""
        return {name: getattr(self, name) for name in CONTROL_FIELDS}


CONTROL_FIELDS = ("cc_temperature", "cc_mode", "cc_mute", "cc_panic", "cc_rhythm", "cc_memory")
