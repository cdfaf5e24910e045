"""Vocabulary, 32-token windows and train/validation splits.

Windows never straddle two pieces. The default split holds out whole pieces, so the
validation loss measures music the model never saw; ``windows`` reproduces the notebook's
random split of overlapping windows (whose validation windows share 31 of 32 tokens
with training windows) only for comparison.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mididuet.daemon.music.expression import DEFAULT, Encoding
from mididuet.daemon.music.tokens import encode
from mididuet.daemon.predict.bundle import WINDOW

from .augment import augment_pieces
from .corpus import Piece
from .expression import Expression, encode_records

SPLITS = ("pieces", "development", "windows")
# Splits that hold out whole pieces. "development" leaves out the pieces "pieces" holds out
# (the test set) and holds out the same share of the rest: a run to choose on, whose
# figures never touch the pieces a shipped model reports on.
PIECE_SPLITS = ("pieces", "development")


def build_vocabulary(pieces: Sequence[Piece], min_count: int) -> list[str]:
    """Tokens seen at least ``min_count`` times, most frequent first (ties by name)."""
    counts = Counter(t for piece in pieces for t in piece.tokens)
    kept = [t for t, n in counts.items() if n >= min_count]
    return sorted(kept, key=lambda t: (-counts[t], t))


def encode_pieces(pieces: Sequence[Piece], vocabulary: Sequence[str]) -> list[np.ndarray]:
    """Each piece as an int32 id array, tokens outside the vocabulary dropped."""
    ids = {t: i for i, t in enumerate(vocabulary)}
    return [np.asarray(encode(p.tokens, ids), dtype=np.int32) for p in pieces]


def make_windows(sequences: Sequence[np.ndarray], window: int = WINDOW) -> tuple[np.ndarray, np.ndarray]:
    """Every ``window`` consecutive ids of a piece and the id that follows them."""
    xs, ys = [], []
    for seq in sequences:
        if len(seq) <= window:
            continue
        view = np.lib.stride_tricks.sliding_window_view(seq, window + 1)
        xs.append(view[:, :window])
        ys.append(view[:, window])
    if not xs:
        return np.zeros((0, window), np.int32), np.zeros((0,), np.int32)
    return np.concatenate(xs).astype(np.int32), np.concatenate(ys).astype(np.int32)


def make_sequences(sequences: Sequence[np.ndarray], window: int = WINDOW,
                   stride: int = WINDOW // 2) -> tuple[np.ndarray, np.ndarray]:
    """Chunks of ``window`` ids and the same chunk shifted by one: a target at every position.

    For causal networks that predict at every position (``--arch wavenet``): one chunk
    trains ``window`` targets for the cost of one forward pass, where :func:`make_windows`
    needs ``window`` passes. A stride of half the window shows each target once with at
    least half a window of context and once with less.
    """
    xs, ys = [], []
    for seq in sequences:
        if len(seq) <= window:
            continue
        view = np.lib.stride_tricks.sliding_window_view(seq, window + 1)[::stride]
        xs.append(view[:, :window])
        ys.append(view[:, 1:])
    if not xs:
        return np.zeros((0, window), np.int32), np.zeros((0, window), np.int32)
    return np.concatenate(xs).astype(np.int32), np.concatenate(ys).astype(np.int32)


def recorded_split_seed(facts: Mapping[str, Any]) -> Any:
    """The seed a bundle's split was drawn with, from its training facts: its own
    (``--split-seed``), else the run's ``seed`` (runs without one, and older bundles)."""
    return facts.get("split_seed", facts.get("seed"))


def split_pieces(pieces: Sequence[Piece], val_fraction: float, seed: int) -> tuple[list[Piece], list[Piece]]:
    """Hold out whole pieces: a seeded shuffle of the names, the first part validates."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"validation fraction must be in (0, 1), got {val_fraction}")
    if len(pieces) < 2:
        raise ValueError("a split by pieces needs at least 2 pieces")
    names = sorted(p.name for p in pieces)
    random.Random(seed).shuffle(names)
    n_val = min(max(1, round(len(names) * val_fraction)), len(names) - 1)
    held_out = set(names[:n_val])
    return [p for p in pieces if p.name not in held_out], [p for p in pieces if p.name in held_out]


@dataclass
class Dataset:
    vocabulary: list[str]
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    split: str
    train_pieces: list[str]
    val_pieces: list[str]
    train_sequences: list[np.ndarray]  # for the n-gram baselines (never transposed)
    val_sequences: list[np.ndarray]
    fit_sequences: list[np.ndarray]  # what the network trains on: train_sequences, augmented
    # With the expressive heads (--expressive): each piece's ids, features and head
    # targets, aligned with the sequences above (fit: augmented training pieces).
    fit_expression: list[Expression] | None = None
    train_expression: list[Expression] | None = None
    val_expression: list[Expression] | None = None
    excluded_pieces: list[str] = field(default_factory=list)  # left out of a development split: the test set


def build_dataset(
    pieces: Sequence[Piece],
    *,
    split: str = "pieces",
    val_fraction: float = 0.2,
    min_count: int = 40,
    seed: int = 42,
    vocabulary: Sequence[str] | None = None,
    transpose: int = 0,
    expressive: bool = False,
    encoding: Encoding = DEFAULT,
) -> Dataset:
    """Vocabulary from the training pieces, then windows on both sides of the split.

    ``transpose`` K adds every training piece in its transpositions by −K…+K semitones
    (after the vocabulary is chosen from the untransposed pieces, so the vocabulary and the
    n-gram baselines do not change with K). Validation pieces are never transposed.
    ``expressive`` also derives each piece's features and head targets from its records
    (the mido reader keeps them), as ``encoding`` reads them (a bundle's, to evaluate it);
    it needs the split by pieces.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if split in PIECE_SPLITS:
        train, val = split_pieces(pieces, val_fraction, seed)
        excluded: list[Piece] = []
        if split == "development":
            excluded = val
            train, val = split_pieces(train, val_fraction, seed)
        vocab = list(vocabulary) if vocabulary is not None else build_vocabulary(train, min_count)
        if not vocab:
            raise ValueError(f"no token occurs {min_count} times in the training pieces; lower --min-count")
        train_seqs, val_seqs = encode_pieces(train, vocab), encode_pieces(val, vocab)
        fit_seqs = encode_pieces(augment_pieces(train, transpose), vocab) if transpose else train_seqs
        x_train, y_train = make_windows(fit_seqs)
        x_val, y_val = make_windows(val_seqs)
        ds = Dataset(vocab, x_train, y_train, x_val, y_val, split,
                     [p.name for p in train], [p.name for p in val], train_seqs, val_seqs, fit_seqs,
                     excluded_pieces=[p.name for p in excluded])
        if expressive:
            ds.fit_expression = expressions(augment_pieces(train, transpose) if transpose else train, vocab,
                                            encoding)
            ds.train_expression = expressions(train, vocab, encoding)
            ds.val_expression = expressions(val, vocab, encoding)
        return ds

    if expressive:
        raise ValueError("the expressive heads need --split pieces (or development)")
    # The notebook's way: one pool of windows from all pieces, split at random.
    from sklearn.model_selection import train_test_split

    vocab = list(vocabulary) if vocabulary is not None else build_vocabulary(pieces, min_count)
    if not vocab:
        raise ValueError(f"no token occurs {min_count} times; lower --min-count")
    seqs = encode_pieces(pieces, vocab)
    x, y = make_windows(seqs)
    if transpose:
        raise ValueError("transposition needs --split pieces: with random windows a transposed copy "
                         "of a validation window would be in training")
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.3, random_state=42)
    names = [p.name for p in pieces]
    return Dataset(vocab, x_train, y_train, x_val, y_val, split, names, [], seqs, [], seqs)


def expressions(pieces: Sequence[Piece], vocabulary: Sequence[str], encoding: Encoding = DEFAULT) -> list[Expression]:
    """Each piece's ids, features and head targets. Raises ``ValueError`` for a piece read
    without its records (the music21 reader keeps none)."""
    ids = {t: i for i, t in enumerate(vocabulary)}
    missing = [p.name for p in pieces if p.records is None]
    if missing:
        raise ValueError(f"the expressive heads need how each token was played, which the music21 reader "
                         f"does not keep ({missing[0]}...); use --reader mido")
    return [encode_records(p.records or (), ids, encoding) for p in pieces]


def expressive_windows(pieces: Sequence[Expression], per_position: bool, window: int = WINDOW,
                       stride: int = WINDOW // 2) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The inputs (``tokens``, ``features``, ``next_tokens``) and targets (``probs`` and one
    per head) of expressive training, as :func:`make_sequences` (``per_position``: a target
    at every position, chunks ``stride`` apart) or :func:`make_windows` (the next token
    after each window) cut them. ``next_tokens`` is the token each head is told of."""
    starts = [(p, i) for p in pieces if len(p) > window
              for i in range(0, len(p) - window, stride if per_position else 1)]
    n, width = len(starts), len(pieces[0].features[0]) if pieces else 0
    tokens = np.zeros((n, window), np.int32)
    features = np.zeros((n, window, width), np.int32)
    shape = (n, window) if per_position else (n,)
    heads = {name: np.zeros(shape, np.int32) for name in (pieces[0].targets if pieces else {})}
    following = np.zeros(shape, np.int32)
    for row, (p, i) in enumerate(starts):
        tokens[row], features[row] = p.ids[i:i + window], p.features[i:i + window]
        span = slice(i + 1, i + window + 1) if per_position else i + window
        following[row] = p.ids[span]
        for name, values in p.targets.items():
            heads[name][row] = values[span]
    return ({"tokens": tokens, "features": features, "next_tokens": following}, {"probs": following, **heads})
