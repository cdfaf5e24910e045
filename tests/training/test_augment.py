"""Transposition augmentation: notes move, chords are re-derived, validation stays as it is."""

import numpy as np
import pytest

from mididuet.daemon.music.tokens import normal_order, token_pitch_classes
from mididuet.training.augment import augment_pieces, transpose_piece, transpose_tokens
from mididuet.training.corpus import Piece
from mididuet.training.dataset import build_dataset


def piece(name: str, tokens: list[str]) -> Piece:
    return Piece(name, f"hash-{name}", tuple(tokens))


def test_single_notes_move_by_the_interval_with_music21_spelling():
    assert transpose_tokens(["C4", "E-4", "B3"], 1) == ("C#4", "E4", "C4")
    assert transpose_tokens(["C4", "F#5"], -3) == ("A3", "E-5")


def test_chords_are_rederived_in_normal_order_not_shifted_as_strings():
    assert transpose_tokens(["0.4.7"], 2) == ("2.6.9",)
    # B-D-F up a semitone wraps around 12: C-E♭-G♭.
    assert transpose_tokens(["11.2.5"], 1) == ("0.3.6",)
    # The augmented triad is symmetric: its normal order starts on the lowest pitch class,
    # so shifting the string ("8.0.4") would name a token that never occurs.
    assert transpose_tokens(["0.4.8"], 8) == ("0.4.8",)
    # A lone pitch class (octave doublings) stays a chord token.
    assert transpose_tokens(["0"], 5) == ("5",)


@pytest.mark.parametrize("shift", range(-6, 7))
def test_every_transposed_chord_is_the_normal_order_of_its_shifted_pitch_classes(shift):
    for token in ("0.4.7", "9.0.2.5", "11.2.5", "0.4.8", "1.3.6.9", "0.1"):
        (moved,) = transpose_tokens([token], shift)
        expected = normal_order((pc + shift) % 12 for pc in token_pitch_classes(token))
        assert token_pitch_classes(moved) == expected


def test_notes_pushed_off_the_keyboard_are_dropped_and_chords_kept():
    assert transpose_tokens(["A0", "0.4.7", "C8"], -1) == ("11.3.6", "B7")
    assert transpose_tokens(["A0", "C8"], 1) == ("B-0",)


def test_augment_keeps_the_original_first_then_each_shift_once():
    p = piece("a.mid", ["C4", "0.4.7"])
    out = augment_pieces([p], 2)
    assert [q.name for q in out] == ["a.mid", "a.mid@-1", "a.mid@+1", "a.mid@-2", "a.mid@+2"]
    assert out[0] is p and out[4].tokens == ("D4", "2.6.9")
    assert transpose_piece(p, 0) is p
    with pytest.raises(ValueError, match=r"transpose must be in range 0\.\.6"):
        augment_pieces([p], 7)


def test_dataset_transposes_training_pieces_only_and_keeps_the_vocabulary():
    rng = np.random.default_rng(0)
    names = ["C4", "C#4", "D4", "E-4", "E4", "F4", "F#4", "G4", "G#4", "A4", "B-4", "B4", "0.4.7", "2.5.9"]
    pieces = [piece(f"p{i}", list(rng.choice(names, 80))) for i in range(5)]
    pieces.append(piece("edge", ["A0"] * 80))  # only moves up: A0 − 1 is off the keyboard
    plain = build_dataset(pieces, val_fraction=0.2, min_count=1, seed=0)
    shifted = build_dataset(pieces, val_fraction=0.2, min_count=1, seed=0, transpose=2)
    assert shifted.vocabulary == plain.vocabulary  # decided by the untransposed pieces
    assert shifted.val_pieces == plain.val_pieces
    assert np.array_equal(shifted.x_val, plain.x_val) and np.array_equal(shifted.y_val, plain.y_val)
    # The n-gram baselines see the same untransposed training sequences in both.
    assert all(np.array_equal(a, b) for a, b in zip(shifted.train_sequences, plain.train_sequences, strict=True))
    assert len(shifted.fit_sequences) == 5 * len(plain.train_sequences)
    assert len(shifted.x_train) > 2 * len(plain.x_train)
    # Tokens transposed outside the vocabulary (B-4 + 2 = C5; any chord but the two) are
    # dropped, not mapped to an id.
    assert shifted.x_train.max() < len(plain.vocabulary)
    assert sum(len(s) for s in shifted.fit_sequences) < 5 * sum(len(s) for s in plain.train_sequences)
    with pytest.raises(ValueError, match="split pieces"):
        build_dataset(pieces, split="windows", min_count=1, transpose=1)
