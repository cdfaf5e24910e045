"""How a token is played, as classes both halves share: when, how long, how loud, where.

The reader keeps, for each token, its onset and sounding length (sustain pedal applied)
in beats, its loudest velocity, its lowest and highest pitch and how many notes it has
(:class:`..music.midi_reader.TokenRecord`). From those the trainer derives targets and
the daemon, live, the same features of what the player plays, in units the daemon can
measure: everything is relative to the sequence's own recent past, so no beat or bar
needs to be known.

- **pulse**: the (low) median of the last :data:`HISTORY` inter-onset intervals (IOIs)
  before the token, whoever played them. In the corpus that is in beats; live it is in ns.
- **delay**: the IOI from the previous token to this one ÷ the pulse, as the nearest
  ratio on a musical grid in log space: sixteenths to eights of the pulse, with triplets
  (1/3, 2/3, 4/3) and dotted values (3/4, 3/2), and the long values a rest gives (3…8).
  In the corpus it is taken on the reader's beat grid, so it is exact.
- **timing**: how far the IOI really played strays from that grid value (rubato): the
  real IOI ÷ (delay × the pulse of the real IOIs), on a log grid from 0.8 to 1.25. In the
  corpus that is the tempo map's seconds; live, the daemon's clock.
- **length**: the token's sounding length ÷ the pulse, the nearest ratio on a log grid up
  to 16 (a pedalled chord rings for bars). As a *feature* it is read one token late, as
  it is known live: the window token's feature is the length of the token before it if
  that one had stopped sounding when this one began, else "held" (legato, or the pedal).
  A token's own length is still unknown when the next one is decided, so a feature of it
  would train the model on the future.
- **velocity**: the loudest note minus the median of the last tokens' loudest notes,
  the nearest offset on a grid finer near 0 (dynamics move in small steps).
- **voicing**, for chords: the octave of the lowest note, which of the token's pitch
  classes is the bass (its index in normal order), the spread (highest − lowest, in
  semitone bands), and how many notes double a pitch class (a chord token keeps only the
  classes).

- **sounding** (a feature only, version 3): how long the oldest token still sounding at
  this token's onset has been sounding ÷ the pulse, on the length's grid, or "nothing
  sounding". Under the pedal every token since the last pedal change still sounds, so
  this says where the token falls in the pedal's (the harmony's) span, which is what a
  length mostly depends on; and it is known at the onset, live as in the corpus (the
  player's keys and pedal, mididuet's own scheduled note-offs). Only the
  :data:`SOUNDING_LOOKBACK` tokens before count.

- **loud_0 … loud_7** (features only, version 4): how loud this token and each of the 7
  before it were against the level after this token, the one the next token's velocity
  is measured from: the exact offset in velocity steps, clipped to ±:data:`LOUD_RANGE`.
  The velocity class of a window token is against the level before *it*, on a coarse
  grid; the velocity of the next token moves with the last few tokens' exact loudness
  against the level now, which the network did not work out from those classes
  (docs/model-quality.md). Only the velocity head reads them, at the position it predicts
  from. Known once the token is played, so they never change afterwards.

- **known_0 … known_7** (features only, version 5): the 8 tokens before this one as they
  stand at its onset, when the next token is decided: a token whose notes had all stopped
  gives its length, one still sounding how long it had sounded so far (a lower bound on
  its length), each ÷ the pulse after this token (the unit the next length is measured
  in), on the length's grid. The length feature says only whether the token just before
  had stopped; under the pedal most had not, and by the time a later token is decided
  many have (the pedal lifted), which says how long this passage's pedal spans last
  (docs/model-quality.md). Only the length head reads them, at the position it predicts
  from.

The model reads the same eight classes of every window token as its input features
(a single note's voicing is its own: bass 0, spread 0, nothing doubled), then the
sounding class, then the loud ones, then the known ones, as class + 1, with 0 for
"unknown" (the primer; a first token with no history) and one more value for the
length's "held" and the sounding's "nothing" (:meth:`Encoding.feature_size`); a known
feature still sounding is its class + 1 + the length grid's size. The classes travel in
each bundle's metadata (:meth:`Encoding.as_metadata`), so a bundle is read with the grid
it was trained on; a version-4 bundle reads the first 17 features only, a version-3
bundle the first nine, a version-2 bundle the first eight.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache, cached_property
from itertools import pairwise
from statistics import median_low
from typing import Any

from .tokens import token_pitch_classes

HISTORY = 16
# 2: the length feature is the previous token's, known live (1 leaked the future);
# 3: a ninth feature, what still sounds at the onset;
# 4: the last tokens' exact loudness against the level after each token (the velocity head's);
# 5: the last tokens' lengths, or how long they have sounded, as known at each onset (the length head's)
VERSION = 5
UNKNOWN = 0  # the feature index of an unknown value
HEADS = ("delay", "timing", "length", "velocity", "octave", "bass", "spread", "doubled")  # what it predicts
LOUD_TOKENS = 8  # tokens whose loudness the loud features give: this one and 7 before it
LOUD_RANGE = 40  # velocity steps either side of the level; further is clipped to it
LOUD = tuple(f"loud_{k}" for k in range(LOUD_TOKENS))
KNOWN_TOKENS = 8  # tokens before this one whose lengths (or ages) the known features give
KNOWN = tuple(f"known_{k}" for k in range(KNOWN_TOKENS))
FEATURES = (*HEADS, "sounding", *LOUD, *KNOWN)  # what it reads of each window token (version 5)
FEATURES_BY_VERSION = {2: HEADS, 3: (*HEADS, "sounding"), 4: (*HEADS, "sounding", *LOUD), 5: FEATURES}
READABLE_VERSIONS = tuple(FEATURES_BY_VERSION)
SOUNDING_LOOKBACK = 32  # tokens: how far back the sounding feature looks for a token still sounding
VOICING_HEADS = ("octave", "bass", "spread", "doubled")  # meaningful for chord tokens only


@dataclass(frozen=True)
class Encoding:
    """The class grids of each attribute."""

    delay: tuple[float, ...] = (1 / 4, 1 / 3, 1 / 2, 2 / 3, 3 / 4, 1.0, 4 / 3, 3 / 2, 2.0, 3.0, 4.0, 6.0, 8.0)
    timing: tuple[float, ...] = (0.8, 0.87, 0.93, 1.0, 1.07, 1.15, 1.25)
    length: tuple[float, ...] = (1 / 4, 1 / 2, 3 / 4, 1.0, 3 / 2, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0)
    velocity: tuple[int, ...] = (-30, -20, -14, -9, -5, -2, 0, 2, 5, 9, 14, 20, 30)
    octave: tuple[int, ...] = (1, 2, 3, 4, 5, 6)  # of the lowest note (C4 = MIDI 60 is octave 4)
    bass: tuple[int, ...] = (0, 1, 2, 3, 4, 5)  # index of the bass among the token's pitch classes
    # Spread bands' upper bounds (semitones) and the value played for each.
    spread_bounds: tuple[int, ...] = (7, 12, 19, 26, 33, 127)
    spread: tuple[int, ...] = (5, 10, 16, 23, 30, 38)
    doubled: tuple[int, ...] = (0, 1, 2, 3)
    history: int = HISTORY
    heads: tuple[str, ...] = field(default=HEADS)
    features: tuple[str, ...] = field(default=FEATURES)

    def __post_init__(self) -> None:
        # The networks slice the heads' own columns off the end (the loud ones, then the
        # known ones); the window writes them there.
        trunk = self.trunk_features
        own = (*LOUD[:self.loud_count], *KNOWN[:self.known_count])
        # Known features come whole, after all the loud ones: a bundle declares one of the versions.
        if self.features != (*trunk, *own) or (self.known_count and (self.loud_count, self.known_count) != (
                len(LOUD), len(KNOWN))):
            raise ValueError(f"the loud features, then the known ones, must come last, in order: "
                             f"{list(self.features)}")

    @cached_property
    def version(self) -> int:
        if KNOWN[0] in self.features:
            return 5
        if LOUD[0] in self.features:
            return 4
        return 3 if "sounding" in self.features else 2

    @cached_property
    def trunk_features(self) -> tuple[str, ...]:
        """The features the token stacks read; the loud and known ones, after them, are the
        velocity head's and the length head's."""
        return tuple(name for name in self.features if name not in LOUD and name not in KNOWN)

    @cached_property
    def loud_count(self) -> int:
        """How many loud features each token has (0 before version 4)."""
        return sum(name in LOUD for name in self.features)

    @cached_property
    def known_count(self) -> int:
        """How many known features each token has (0 before version 5)."""
        return sum(name in KNOWN for name in self.features)

    def size(self, head: str) -> int:
        """How many classes a head (or a feature read on a head's grid) has."""
        if head in LOUD:
            return 2 * LOUD_RANGE + 1
        if head in KNOWN:  # a length once stopped, or how long it has sounded so far
            return 2 * len(self.length)
        return len(getattr(self, "length" if head == "sounding" else head))

    def feature_size(self, name: str) -> int:
        """How many values a feature takes: unknown, each class, and for the length, held,
        for the sounding, nothing."""
        return self.size(name) + (2 if name in ("length", "sounding") else 1)

    def loud_features(self, velocities: Sequence[float], level: float | None) -> tuple[int, ...]:
        """A token's loud features: ``velocities`` are its own loudest velocity and those
        of the tokens before it, latest last (NaN where unknown: a primer token); ``level``
        the running level after it. Empty before version 4. (The bundle's metadata carries
        the range, ``loud_range``: another would need another version.)"""
        count = self.loud_count
        if level is None or not count:
            return (UNKNOWN,) * count
        loud = [UNKNOWN] * count
        for k, v in enumerate(reversed(velocities[-count:])):
            if v == v:  # not NaN
                loud[k] = feature(min(max(round(v - level), -LOUD_RANGE), LOUD_RANGE) + LOUD_RANGE)
        return tuple(loud)

    def known_features(self, before: Sequence[tuple[float, bool] | None], pulse: float | None) -> tuple[int, ...]:
        """A token's known features: ``before`` gives the tokens before it, latest first, each
        as (its length, True) if its notes had all stopped by this token's onset, else (how
        long it had sounded by then, False); None where unknown (a primer token, or one that
        began after this one). ``pulse``: the pulse after this token. Empty before version 5."""
        count = self.known_count
        known = [UNKNOWN] * count
        if not pulse or not count:
            return tuple(known)
        for k, item in enumerate(before[:count]):
            if item is not None:
                duration, ended = item
                known[k] = feature(_nearest_log(max(duration, 1e-9) / pulse, self.length)
                                   + (0 if ended else len(self.length)))
        return tuple(known)

    @property
    def longest_delay(self) -> float:
        """The longest interval a token may come after the last, in pulses."""
        return self.delay[-1] * self.timing[-1]

    @property
    def held(self) -> int:
        """The length feature of a token that was still sounding when the next began."""
        return self.size("length") + 1

    @property
    def nothing_sounding(self) -> int:
        """The sounding feature of a token at whose onset nothing before it still sounded."""
        return self.size("sounding") + 1

    def sounding_feature(self, age: float | None, pulse: float | None) -> int:
        """The sounding feature of a token: ``age``, how long the oldest token still sounding
        at its onset has sounded (None: nothing sounds), on the length's grid in pulses."""
        if not pulse:
            return UNKNOWN
        return self.nothing_sounding if age is None else feature(_nearest_log(max(age, 1e-9) / pulse, self.length))

    def previous_length(self, previous_length: int | None, ended: bool | None) -> int:
        """The length feature the next token carries: the previous token's length class once
        it has stopped (``ended``: it stopped before the next onset), held, or unknown."""
        if ended is None:
            return UNKNOWN
        return feature(previous_length) if ended else self.held

    # --- classes of measured values ------------------------------------------------------
    def delay_class(self, ioi: float, pulse: float | None) -> int | None:
        return _nearest_log(ioi / pulse, self.delay) if pulse and ioi > 0 else None

    def timing_class(self, ioi: float, delay: int | None, pulse: float | None) -> int | None:
        """How far ``ioi`` strays from its grid value, delay class ``delay`` × ``pulse``."""
        return _nearest_log(ioi / (self.delay[delay] * pulse), self.timing) if pulse and delay is not None else None

    def length_class(self, length: float, pulse: float | None) -> int | None:
        return _nearest_log(max(length, 1e-9) / pulse, self.length) if pulse else None

    def velocity_class(self, velocity: int, level: float | None) -> int | None:
        return None if level is None else _nearest(velocity - level, self.velocity)

    def octave_class(self, lowest: int) -> int:
        return _nearest(lowest // 12 - 1, self.octave)

    def spread_class(self, semitones: int) -> int:
        return next(i for i, bound in enumerate(self.spread_bounds) if semitones <= bound or i == len(self.spread) - 1)

    def bass_class(self, token: str, lowest: int) -> int:
        """Which of a token's pitch classes is its lowest note (0 for a single note)."""
        pcs = token_pitch_classes(token)
        return min(pcs.index(lowest % 12) if lowest % 12 in pcs else 0, len(self.bass) - 1)

    def played(self, token: str, delay: int | None, timing: int | None, length: int, velocity: int | None,
               lowest: int, highest: int, notes: int, sounding: int = UNKNOWN,
               loud: tuple[int, ...] = (), known: tuple[int, ...] = ()) -> tuple[int, ...]:
        """A token's features, in :attr:`features` order, from its classes and pitches;
        ``length``, ``sounding``, ``loud`` and ``known`` are already features
        (:meth:`previous_length`, :meth:`sounding_feature`, :meth:`loud_features`,
        :meth:`known_features`)."""
        voicing = (self.octave_class(lowest), self.bass_class(token, lowest), self.spread_class(highest - lowest),
                   self.doubled_class(notes, token))
        played = (feature(delay), feature(timing), length, *(feature(c) for c in (velocity, *voicing)))
        if self.version < 3:
            return played
        if self.version < 4:
            return (*played, sounding)
        loud = loud or (UNKNOWN,) * self.loud_count
        if len(loud) != self.loud_count:
            raise ValueError(f"{self.loud_count} loud features expected, got {len(loud)}")
        known = known or (UNKNOWN,) * self.known_count
        if len(known) != self.known_count:
            raise ValueError(f"{self.known_count} known features expected, got {len(known)}")
        return (*played, sounding, *loud, *known)

    def doubled_class(self, notes: int, token: str) -> int:
        return min(max(notes - len(set(token_pitch_classes(token))), 0), len(self.doubled) - 1)

    # --- the bundle's metadata --------------------------------------------------------------
    def as_metadata(self) -> dict[str, Any]:
        return {"version": self.version, "history": self.history, "features": list(self.features),
                **({"loud_range": LOUD_RANGE} if self.version >= 4 else {}),
                "heads": list(self.heads),
                "classes": {"delay": list(self.delay), "timing": list(self.timing), "length": list(self.length),
                            "velocity": list(self.velocity),
                            "octave": list(self.octave), "bass": list(self.bass), "spread": list(self.spread),
                            "spread_bounds": list(self.spread_bounds), "doubled": list(self.doubled)},
                "units": {"delay": "pulse", "timing": "the real IOI over its grid value",
                          "length": "pulse (as a feature: the previous token's, or held)",
                          "velocity": "offset from the running level",
                          "octave": "octave of the lowest note", "bass": "index in normal order",
                          "spread": "semitones, lowest to highest", "doubled": "notes beyond the pitch classes",
                          **({"sounding": "pulse: how long the oldest token still sounding at the onset has "
                                          "sounded (as a feature only), or nothing"} if self.version >= 3 else {}),
                          **({"loud_k": f"velocity steps: the loudest velocity k tokens back (0: this one) minus "
                                        f"the running level after this token, clipped to ±{LOUD_RANGE} (as a "
                                        "feature only, read by the velocity head)"} if self.version >= 4 else {}),
                          **({"known_k": "pulse (after this token): the length of the token k + 1 back if its "
                                         "notes had stopped by this onset, else how long it had sounded, that "
                                         "class + the length grid's size (as a feature only, read by the "
                                         "length head)"} if self.version >= 5 else {})}}

    @classmethod
    def from_metadata(cls, meta: dict[str, Any]) -> Encoding:
        """The encoding a bundle declares. Raises ``ValueError`` naming what is wrong."""
        version = meta.get("version")
        if version not in READABLE_VERSIONS:
            *first, last = map(str, READABLE_VERSIONS)
            raise ValueError(f"expression encoding version {version!r}, this mididuet reads "
                             f"{', '.join(first)} and {last}")
        features = FEATURES_BY_VERSION[version]
        if list(meta.get("features", ())) != list(features):
            raise ValueError(f"features must be {list(features)} (version {version}), got {meta.get('features')!r}")
        heads = tuple(meta.get("heads", ()))
        if heads != HEADS:  # the daemon plays every one of them
            raise ValueError(f"heads must be {list(HEADS)}, got {list(heads)}")
        classes = meta.get("classes")
        if not isinstance(classes, dict):
            raise ValueError("classes must be an object of lists")
        values: dict[str, tuple[Any, ...]] = {}
        for name in ("delay", "timing", "length", "velocity", "octave", "bass", "spread", "spread_bounds", "doubled"):
            got = classes.get(name)
            if not (isinstance(got, list) and got and all(isinstance(v, int | float) for v in got)):
                raise ValueError(f"classes.{name} must be a non-empty list of numbers")
            values[name] = tuple(got)
        if any(v <= 0 for v in values["delay"] + values["timing"] + values["length"]):
            raise ValueError("delay, timing and length classes must be positive ratios")
        # Played as MIDI numbers: a velocity offset, an octave, an index into the chord,
        # semitones and a count of notes.
        whole = ("velocity", "octave", "bass", "spread", "spread_bounds", "doubled")
        if any(isinstance(v, bool) or not isinstance(v, int) for name in whole for v in values[name]):
            raise ValueError(f"classes.{', '.join(whole)} must be whole numbers")
        if any(v < 0 for v in values["bass"] + values["doubled"] + values["spread"]) or \
                not all(-1 <= v <= 9 for v in values["octave"]):
            raise ValueError("bass, spread and doubled classes must be 0 or more, octaves -1..9")
        if len(values["spread"]) != len(values["spread_bounds"]):
            raise ValueError("classes.spread and classes.spread_bounds must have the same length")
        history = meta.get("history")
        if not isinstance(history, int) or history < 1:
            raise ValueError(f"history must be a positive integer, got {history!r}")
        if version >= 4 and meta.get("loud_range") != LOUD_RANGE:
            raise ValueError(f"loud_range must be {LOUD_RANGE} (this mididuet's loud classes), "
                             f"got {meta.get('loud_range')!r}")
        return cls(**values, history=history, heads=heads, features=features)  # type: ignore[arg-type]


def _nearest_log(ratio: float, grid: Sequence[float]) -> int:
    """The index of ``grid``'s value nearest ``ratio`` in log space (the first on a tie)."""
    target = math.log(ratio)
    logs, ascending = _logs(tuple(grid))
    if not ascending:
        return min(range(len(logs)), key=lambda i: abs(logs[i] - target))
    # Only the two values either side of the target can be nearest: reading a corpus asks
    # this a quarter of a million times.
    j = bisect_left(logs, target)
    if j == 0:
        return 0
    if j == len(logs) or abs(logs[j - 1] - target) <= abs(logs[j] - target):
        return j - 1
    return j


@cache
def _logs(grid: tuple[float, ...]) -> tuple[tuple[float, ...], bool]:
    logs = tuple(math.log(value) for value in grid)
    return logs, all(a < b for a, b in pairwise(logs))


def _nearest(value: float, grid: Sequence[float]) -> int:
    return min(range(len(grid)), key=lambda i: abs(grid[i] - value))


def standing(start: float, end: float, onset: float, tolerance: float = 0.0) -> tuple[float, bool]:
    """A token that began at ``start`` and stops at ``end``, as it stands at a later
    ``onset`` (what :meth:`Encoding.known_features` reads of it): (its length, True) if it
    had stopped by then (``tolerance`` later at the most), else (how long it had sounded,
    False). The trainer and the daemon's window both ask it, so the model reads live what
    it read in training."""
    return (end - start, True) if end <= onset + tolerance else (onset - start, False)


def running_median(values: Sequence[float], end: int, history: int = HISTORY) -> float | None:
    """The (low) median of the (up to) ``history`` values before index ``end``, or None.
    The low median is one of the values, so a pulse is always an IOI that was played and
    a rhythm on the grid stays on it."""
    recent = values[max(0, end - history):end]
    return float(median_low(recent)) if len(recent) else None


def feature(index: int | None) -> int:
    """A class as the model's input reads it: class + 1, or :data:`UNKNOWN`."""
    return UNKNOWN if index is None else index + 1


DEFAULT = Encoding()
