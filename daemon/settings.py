"""The engine's settings: one dataclass, validated once, shared by the CLI, TOML and tests.

Every field has a default that works for a musician who names no option. ``validate``
raises ``ValueError`` naming the field and its allowed range.

Default control numbers: CC 21–24 lie in the MIDI 1.0 "undefined" block (20–31), so they
never collide with standard controllers (modulation, volume, sustain, all-notes-off), and
many controllers send CC 21 and up from their first knobs or pads by default.
"""

from __future__ import annotations

from dataclasses import dataclass

MODES = ("duet", "jam", "solo")
SAMPLINGS = ("greedy", "temperature", "top-p")

MAX_ANSWER_TOKENS = 256
CHORD_WINDOW_RANGE_MS = (0.0, 500.0)
PHRASE_GAP_RANGE_MS = (50.0, 10_000.0)
TEMPERATURE_RANGE = (0.05, 5.0)
BPM_RANGE = (20.0, 400.0)
SUSTAIN_CC = 64
SWITCH_ON = 64  # MIDI 1.0: a switch controller (the sustain pedal, our mute) is on at 64..127


@dataclass
class EngineSettings:
    """How the engine listens, samples and plays (see README "Options")."""

    mode: str = "duet"
    chord_window_ms: float = 40.0
    phrase_gap_ms: float = 600.0
    answer_tokens: int | None = None  # None: about as long as the call
    # top-p with a loop guard: varied, and never stuck in a riff (greedy may loop).
    sampling: str = "top-p"
    temperature: float = 1.0
    # 0.95: with the shipped model 0.9 kept too little (84 distinct tokens, pitch classes far
    # from Chopin's); 0.95 trims only the improbable tail (docs/model-quality.md, decoding).
    top_p: float = 0.95
    seed: int | None = None
    bpm: float | None = None  # fixed pulse; None follows the player
    follow_clock: bool = False  # follow incoming MIDI clock (24 ppq)
    velocity: int | None = None  # None follows the player's recent median
    channel: int = 1  # output channel 1..16
    channel_in: int | None = None  # None = all channels
    thru: bool = False
    cc_temperature: int = 21
    cc_mode: int = 22
    cc_mute: int = 23
    cc_panic: int = 24

    def validate(self) -> None:
        """Raise ``ValueError`` for the first field outside its allowed values, or for
        fields that exclude each other."""
        self.validate_fields()
        if self.bpm is not None and self.follow_clock:
            raise ValueError("bpm and follow_clock exclude each other: choose one pulse")
        controls = {"cc_temperature": self.cc_temperature, "cc_mode": self.cc_mode,
                    "cc_mute": self.cc_mute, "cc_panic": self.cc_panic}
        if len(set(controls.values())) != len(controls):
            raise ValueError(f"cc_temperature, cc_mode, cc_mute and cc_panic must differ, got {controls}")

    def validate_fields(self) -> None:
        """Each field on its own (a config key is checked with this: a rule between two
        fields can only be judged once all of them are known)."""
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {', '.join(SAMPLINGS)}, got {self.sampling!r}")
        _check_range("chord_window_ms", self.chord_window_ms, *CHORD_WINDOW_RANGE_MS)
        _check_range("phrase_gap_ms", self.phrase_gap_ms, *PHRASE_GAP_RANGE_MS)
        if self.answer_tokens is not None:
            _check_int("answer_tokens", self.answer_tokens, 1, MAX_ANSWER_TOKENS)
        _check_range("temperature", self.temperature, *TEMPERATURE_RANGE)
        if not (isinstance(self.top_p, int | float) and 0.0 < self.top_p <= 1.0):
            raise ValueError(f"top_p must be in range (0, 1], got {self.top_p!r}")
        if self.seed is not None and (not isinstance(self.seed, int) or self.seed < 0):
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.bpm is not None:
            _check_range("bpm", self.bpm, *BPM_RANGE)
        if self.velocity is not None:
            _check_int("velocity", self.velocity, 1, 127)
        _check_int("channel", self.channel, 1, 16)
        if self.channel_in is not None:
            _check_int("channel_in", self.channel_in, 1, 16)
        controls = {"cc_temperature": self.cc_temperature, "cc_mode": self.cc_mode,
                    "cc_mute": self.cc_mute, "cc_panic": self.cc_panic}
        for name, number in controls.items():
            _check_int(name, number, 0, 119)  # 120..127 are channel mode messages
            if number == SUSTAIN_CC:
                raise ValueError(f"{name} must not be {SUSTAIN_CC}: that is the sustain pedal")


def _check_range(name: str, value: object, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ValueError(f"{name} must be in range {low:g}..{high:g}, got {value!r}")


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in range {low}..{high}, got {value!r}")
