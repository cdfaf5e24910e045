"""The expressive targets and features of a piece, from its token records.

For each token of a piece (after tokens outside the vocabulary are dropped, as the
daemon's window drops them), with the encoding of
:mod:`mididuet.daemon.music.expression`:

- the **targets** the heads learn, one class per head (``-1`` where a head says nothing:
  voicing for a single note, delay and length before any IOI is known, velocity before
  any level is known);
- the **features** the network reads with each token: the same eight classes
  (:meth:`~mididuet.daemon.music.expression.Encoding.played`), as class + 1 (0: unknown),
  except the length, which is the previous token's (or "held", when it was still
  sounding as this one began): only that is known when the next token is decided; and
  (version 3) how long the oldest token still sounding at its onset has sounded
  (:func:`sounding_ages`); the trunk reads these. And (version 4) how loud it and the
  tokens before it were against the level after it
  (:meth:`~mididuet.daemon.music.expression.Encoding.loud_features`), which only the
  velocity head reads; and (version 5) the 8 tokens before it as they stand at its onset,
  each one's length if it had stopped, else how long it had sounded
  (:meth:`~mididuet.daemon.music.expression.Encoding.known_features`), which only the
  length head reads.

The daemon computes the same features of the player's tokens live from their onsets and
velocities (:mod:`mididuet.daemon.predict.window`), so the model sees what it saw here.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from mididuet.daemon.music.expression import (
    DEFAULT,
    HEADS,
    SOUNDING_LOOKBACK,
    UNKNOWN,
    VOICING_HEADS,
    Encoding,
    running_median,
    standing,
)
from mididuet.daemon.music.midi_reader import TokenRecord
from mididuet.daemon.music.tokens import is_chord

IGNORE = -1  # a target the loss and the metrics leave out
EPSILON = 1e-6  # beats: a note released exactly as the next begins has stopped


@dataclass
class Expression:
    """A piece's ids, features ``[n, F]`` (the encoding's) and head targets ``{head: [n]}``, aligned, and
    ``stopped``: for each token, the first token at whose onset all its notes had stopped
    (``n`` if none did), which says when its length is known live (None: each by the next)."""

    ids: np.ndarray
    features: np.ndarray
    targets: dict[str, np.ndarray]
    stopped: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)


def encode_records(records: Sequence[TokenRecord], vocabulary: dict[str, int],
                   encoding: Encoding = DEFAULT) -> Expression:
    """Ids, features and targets of a piece's records (tokens outside ``vocabulary`` dropped)."""
    kept = [r for r in records if r.token in vocabulary]
    n = len(kept)
    onsets = [r.onset for r in kept]
    ends = [r.onset + r.length for r in kept]
    velocities = [float(r.velocity) for r in kept]
    iois = [0.0] + [b - a for a, b in pairwise(onsets)]
    seconds = [0.0] + [b.onset_s - a.onset_s for a, b in pairwise(kept)]  # as played: the rubato too
    targets = {head: np.full(n, IGNORE, dtype=np.int32) for head in HEADS}
    features = np.zeros((n, len(encoding.features)), dtype=np.int32)
    ages = sounding_ages(np.asarray(onsets), np.asarray(ends) - np.asarray(onsets))
    lengths: list[int | None] = []
    # The first token at whose onset each token's notes had all stopped: the length feature
    # says whether that is the very next one, the baselines when the length is known.
    stopped = [max(bisect_left(onsets, end, key=lambda o: o + EPSILON), k + 1) for k, end in enumerate(ends)]
    # levels[i], pulses[i]: the level and pulse before token i, which are also those after token i - 1.
    levels = [running_median(velocities, i, encoding.history) for i in range(n + 1)]
    pulses = [running_median(iois[1:i], i - 1, encoding.history) if i >= 2 else None for i in range(n + 1)]
    for i, r in enumerate(kept):
        # The pulse and level before this token: what the daemon knows when deciding it.
        pulse = pulses[i]
        pulse_s = running_median(seconds[1:i], i - 1, encoding.history) if i >= 2 else None
        level = levels[i]
        delay = encoding.delay_class(iois[i], pulse) if i >= 1 else None
        timing = encoding.timing_class(seconds[i], delay, pulse_s) if seconds[i] > 0 else None
        length = encoding.length_class(r.length, pulse)
        velocity = encoding.velocity_class(r.velocity, level)
        previous = encoding.previous_length(lengths[-1], stopped[i - 1] <= i) if i else UNKNOWN
        lengths.append(length)
        sounding = encoding.sounding_feature(None if np.isnan(ages[i]) else float(ages[i]), pulse)
        # The loudness of this token and those before it against the level after it: what
        # the daemon knows of them when deciding the next token.
        loud = encoding.loud_features(velocities[max(0, i + 1 - encoding.loud_count):i + 1], levels[i + 1])
        # The tokens before it as they stand at its onset, in the pulse after it: what the
        # daemon knows of their lengths when deciding the next token.
        before = [standing(onsets[j], ends[j], r.onset, EPSILON)
                  for j in range(i - 1, max(i - 1 - encoding.known_count, -1), -1)]
        known = encoding.known_features(before, pulses[i + 1])
        features[i] = encoding.played(r.token, delay, timing, previous, velocity, r.lowest, r.highest, r.notes,
                                      sounding, loud, known)
        for head, value in (("delay", delay), ("timing", timing), ("length", length), ("velocity", velocity)):
            if value is not None:
                targets[head][i] = value
        if is_chord(r.token):  # a single note's voicing is its token's: nothing to predict
            for head in VOICING_HEADS:
                targets[head][i] = features[i][encoding.features.index(head)] - 1
    ids = np.asarray([vocabulary[r.token] for r in kept], dtype=np.int32)
    return Expression(ids, features, targets, np.asarray(stopped, dtype=np.int32))


def sounding_ages(onsets: np.ndarray, lengths: np.ndarray, lookback: int = SOUNDING_LOOKBACK) -> np.ndarray:
    """For each token, how long the oldest of the ``lookback`` tokens before it that still
    sounds at its onset has sounded (NaN: none does), in the onsets' unit."""
    ends = onsets + lengths
    ages = np.full(len(onsets), np.nan)
    for lag in range(1, min(lookback, len(onsets) - 1) + 1):  # the oldest, the longest lag, writes last
        later, earlier = onsets[lag:], slice(0, len(onsets) - lag)
        still = ends[earlier] > later + EPSILON
        ages[lag:] = np.where(still, later - onsets[earlier], ages[lag:])
    return ages
