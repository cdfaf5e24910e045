"""The n-gram baselines the heads and the token are measured against."""

from __future__ import annotations

import numpy as np
import pytest

from mididuet.training.evaluate import NGram
from mididuet.training.evaluate_heads import held_out_targets, skipped
from mididuet.training.expression import IGNORE, Expression


def test_an_ngram_learns_what_follows_its_context() -> None:
    model = NGram(2, 3, [np.array([0, 1, 0, 1, 0, 1, 0, 2])])
    after_zero = model.distribution([0])
    assert after_zero[1] > after_zero[2] > 0
    assert model.distribution([]) == pytest.approx(model.distribution([2]))  # an unseen context backs off


def test_a_context_shorter_than_the_order_is_used_whole() -> None:
    sequence = np.array([0, 1, 2, 0, 1, 0, 0, 1, 2, 2, 1, 0])
    # Two symbols known: an order-4 model reads both, as an order-3 model does.
    assert NGram(4, 3, [sequence]).distribution([0, 1]) == pytest.approx(NGram(3, 3, [sequence]).distribution([0, 1]))


def test_a_skipping_ngram_predicts_from_the_values_before_the_last() -> None:
    # 5 always comes two after a 3; what comes right after a 3 is noise.
    sequence = np.array([3, 0, 5, 3, 1, 5, 3, 2, 5, 3, 0, 5, 3, 1, 5])
    skipping = NGram(2, 6, [sequence], skip=1)
    assert skipping.distribution([3]).argmax() == 5
    assert NGram(2, 6, [sequence]).distribution([3]).argmax() != 5


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
