"""The n-gram baselines the heads and the token are measured against."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mididuet.daemon.music.expression import DEFAULT, FEATURES, UNKNOWN
from mididuet.daemon.music.midi_reader import TokenRecord
from mididuet.training.evaluate import NGram
from mididuet.training.evaluate_heads import (
    STILL_SOUNDING,
    evaluate_heads,
    held_out_targets,
    known_history,
    skipped,
)
from mididuet.training.expression import IGNORE, Expression, encode_records, sounding_ages


def test_an_ngram_learns_what_follows_its_context() -> None:
    model = NGram(2, 3, [np.array([0, 1, 0, 1, 0, 1, 0, 2])])
    after_zero = model.distribution([0])
    assert after_zero[1] > after_zero[2] > 0
    assert model.distribution([]) == pytest.approx(model.distribution([2]))  # an unseen context backs off


def test_a_context_shorter_than_the_order_is_used_whole() -> None:
    sequence = np.array([0, 1, 2, 0, 1, 0, 0, 1, 2, 2, 1, 0])
    # Two symbols known: an order-4 model reads both, as an order-3 model does.
    assert NGram(4, 3, [sequence]).distribution([0, 1]) == pytest.approx(NGram(3, 3, [sequence]).distribution([0, 1]))


def test_an_ngram_counted_from_contexts_is_the_one_counted_from_the_sequence() -> None:
    sequence = np.array([0, 1, 2, 0, 1, 0, 0, 1, 2, 2, 1, 0])
    ids = sequence.tolist()
    pairs = [(ids[max(i - 2, 0):i], token) for i, token in enumerate(ids)]
    for context in ([], [0], [0, 1], [2, 2]):
        assert NGram.from_contexts(3, 3, pairs).distribution(context) == pytest.approx(
            NGram(3, 3, [sequence]).distribution(context))


def test_the_length_baseline_sees_only_the_lengths_known_when_the_next_is_decided() -> None:
    values = np.arange(40, dtype=np.int32) % 7
    piece = Expression(np.zeros(40, np.int32), np.zeros((40, 8), np.int32),
                       {"length": values, "velocity": values.copy()})
    piece.targets["velocity"][33] = IGNORE
    assert skipped("length") == 1 and skipped("velocity") == 0
    _, lengths = held_out_targets([piece], "length", 3)
    _, velocities = held_out_targets([piece], "velocity", 3)
    assert lengths[0] == [int(values[29]), int(values[30])]  # not the 32nd value, the last one's
    assert velocities[0] == [int(values[30]), int(values[31])]
    assert velocities[3] == [int(values[32]), int(values[34])]  # the ignored 33rd is no history


def test_a_length_still_sounding_is_not_known_to_the_baseline() -> None:
    # Token 29 rings (the pedal) until token 33's onset: deciding token 32 (as token 31 is
    # played) its length is not known yet, deciding token 34 it is.
    values = np.arange(40, dtype=np.int32) % 7
    stopped = np.arange(1, 41, dtype=np.int32)
    stopped[29] = 33
    piece = Expression(np.zeros(40, np.int32), np.zeros((40, 8), np.int32), {"length": values}, stopped)
    assert known_history(piece, "length", 32, 3) == [STILL_SOUNDING, int(values[30])]
    assert known_history(piece, "length", 33, 4) == [STILL_SOUNDING, int(values[30]), int(values[31])]
    assert known_history(piece, "length", 34, 5) == [int(v) for v in values[29:33]]


def test_a_piece_knows_when_each_token_s_notes_had_stopped() -> None:
    # Four tokens a beat apart: the first rings 2.5 beats, the second stops early, the
    # third exactly at the next onset, the last never meets another onset.
    records = [TokenRecord("C4", onset=float(i), length=length, velocity=64, lowest=60, highest=60, notes=1,
                           onset_s=0.5 * i) for i, length in enumerate((2.5, 0.5, 1.0, 4.0))]
    piece = encode_records(records, {"C4": 0})
    assert piece.stopped.tolist() == [3, 2, 3, 4]


def test_each_token_knows_how_long_the_oldest_token_still_sounding_at_its_onset_has_sounded() -> None:
    # A pedalled bass (0) under four melody notes; the pedal changes at beat 4, where the
    # bass and the second note stop; the third note (3) rings on past the fifth onset.
    onsets = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    lengths = np.array([4.0, 3.0, 0.5, 2.5, 1.0, 1.0])
    ages = sounding_ages(onsets, lengths)
    assert np.isnan(ages[0]) and ages[1:4].tolist() == [1.0, 2.0, 3.0]
    assert ages[4] == 1.0, "the bass and note 1 stopped as note 4 began: note 3 is the oldest"
    assert ages[5] == 2.0
    assert np.isnan(sounding_ages(onsets, np.full(6, 0.5))).all(), "staccato: nothing sounds at any onset"
    assert sounding_ages(onsets, lengths, lookback=2)[3] == 2.0, "only the lookback's tokens count"
    piece = encode_records([TokenRecord("C4", onset=float(o), length=float(n), velocity=64, lowest=60, highest=60,
                                        notes=1, onset_s=0.5 * o) for o, n in zip(onsets, lengths, strict=True)],
                           {"C4": 0})
    sounding = piece.features[:, FEATURES.index("sounding")]
    # No pulse before the first two onsets (unknown); then the age in pulses of one beat.
    assert sounding.tolist()[:2] == [UNKNOWN, UNKNOWN]
    assert [DEFAULT.length[c - 1] for c in sounding[2:]] == [2.0, 3.0, 1.0, 2.0]


def test_a_context_shorter_than_the_order_keeps_every_known_value() -> None:
    # Only two values are known before the first held-out target (the rest of the first
    # window is IGNORE): an order-4 baseline's context is both, not the last one alone.
    values = np.full(40, IGNORE, dtype=np.int32)
    values[[10, 20]] = [4, 5]
    values[32:] = 1
    piece = Expression(np.zeros(40, np.int32), np.zeros((40, 8), np.int32), {"velocity": values})
    _, contexts = held_out_targets([piece], "velocity", 4)
    assert contexts[0] == [4, 5]
    assert contexts[1] == [4, 5, 1]


def test_the_token_aware_baseline_knows_what_the_token_decides() -> None:
    """A chord's voicing is much decided by the chord: here the bass index is fixed by the
    token, while its own history is noise. The head, told the token, predicts it; so must
    a baseline worth comparing with (the issue's n-grams cannot)."""
    vocabulary = ["C4", "D4", "0.4.7", "2.6.9"]
    rng = np.random.default_rng(0)

    def piece(n: int) -> Expression:
        ids = rng.integers(2, 4, n).astype(np.int32)
        return Expression(ids, np.zeros((n, 8), np.int32), {"bass": (ids - 2) * 2})  # bass 0 or 2, by the chord

    train, val = [piece(400) for _ in range(3)], [piece(200)]
    targets, _ = held_out_targets(val, "bass", 1)
    exact = np.eye(3)[targets] * 0.98 + 0.01  # a head that knows the token
    (row,) = evaluate_heads({"bass": exact}, val, train, dataclasses.replace(DEFAULT, bass=(0, 1, 2)), vocabulary)
    assert row.ratio < 0.1, "against the n-grams of its own history, a near-perfect head"
    assert row.token_aware is not None and row.token_aware < 0.02, "the token-aware baseline knows it too"
    assert row.token_ratio is not None and row.token_ratio > 0.5
