"""Vocabulary, windows and splits."""

import numpy as np
import pytest

from mididuet.training.corpus import Piece
from mididuet.training.dataset import build_dataset, build_vocabulary, make_windows, split_pieces


def piece(name: str, tokens: list[str]) -> Piece:
    return Piece(name, name, tuple(tokens))


def test_vocabulary_keeps_frequent_tokens_most_frequent_first():
    pieces = [piece("a", ["C4"] * 5 + ["D4"] * 3 + ["0.4.7"] * 3 + ["E4"])]
    assert build_vocabulary(pieces, min_count=3) == ["C4", "0.4.7", "D4"]


def test_windows_never_straddle_two_pieces():
    first, second = np.arange(0, 40, dtype=np.int32), np.arange(100, 140, dtype=np.int32)
    x, y = make_windows([first, second])
    assert x.shape == (16, 32) and y.shape == (16,)
    for window, target in zip(x, y, strict=True):
        # each window is consecutive ids of one piece, and its target follows it
        assert np.all(np.diff(window) == 1) and target == window[-1] + 1


def test_piece_split_is_seeded_and_disjoint():
    pieces = [piece(f"p{i}", ["C4"] * 40) for i in range(10)]
    train, val = split_pieces(pieces, 0.2, seed=1)
    assert len(val) == 2 and not {p.name for p in train} & {p.name for p in val}
    assert [p.name for p in split_pieces(pieces, 0.2, seed=1)[1]] == [p.name for p in val]
    assert [p.name for p in split_pieces(pieces, 0.2, seed=2)[1]] != [p.name for p in val]


def test_a_development_split_leaves_the_test_pieces_out_and_holds_out_some_of_the_rest():
    pieces = [piece(f"p{i}", ["C4", "D4"] * 30) for i in range(25)]
    test = build_dataset(pieces, val_fraction=0.2, min_count=1, seed=3)
    dev = build_dataset(pieces, split="development", val_fraction=0.2, min_count=1, seed=3)
    assert dev.excluded_pieces == test.val_pieces and test.excluded_pieces == []
    assert len(dev.val_pieces) == 4, "a fifth of the 20 pieces left"
    assert set(dev.train_pieces) | set(dev.val_pieces) == set(test.train_pieces)
    assert set(dev.val_pieces).isdisjoint(dev.train_pieces)
    assert len(dev.val_sequences) == 4 and len(dev.train_sequences) == 16


def test_dataset_vocabulary_comes_from_training_pieces_only():
    rng = np.random.default_rng(0)
    tokens = ["C4", "D4", "E4", "F4"]
    pieces = [piece(f"p{i}", list(rng.choice(tokens, 60))) for i in range(5)]
    pieces.append(piece("odd", ["G9"] * 60))
    ds = build_dataset(pieces, val_fraction=0.2, min_count=1, seed=0)
    assert set(ds.train_pieces).isdisjoint(ds.val_pieces)
    assert ("G9" in ds.vocabulary) == ("odd" in ds.train_pieces)
    assert ds.x_train.dtype == np.int32 and ds.x_train.shape[1] == 32


def test_window_split_reproduces_the_notebook_random_split():
    pieces = [piece(f"p{i}", [f"C{i % 3 + 3}", "D4"] * 40) for i in range(4)]
    ds = build_dataset(pieces, split="windows", min_count=1)
    total = len(ds.x_train) + len(ds.x_val)
    assert len(ds.x_val) == pytest.approx(0.3 * total, abs=1)
    again = build_dataset(pieces, split="windows", min_count=1)
    assert np.array_equal(ds.x_val, again.x_val)
