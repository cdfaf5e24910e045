"""Transposition augmentation: each training piece again in the keys a few semitones away.

With 48 pieces the model sees each key's material only a few times; shifting a piece by
k semitones gives new, musically valid material. Tokens move with
:func:`mididuet.daemon.music.tokens.transpose_token`: a single note by the interval (a note pushed
outside the piano's 21..108 is dropped, as a pianist could not play it), a chord token
re-derived from its shifted pitch classes in normal order (shifting the string would be
wrong: the most packed rotation can change). Only training pieces are augmented; the
caller never passes validation pieces here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from mididuet.daemon.music.midi_reader import TokenRecord
from mididuet.daemon.music.tokens import transpose_token

from .corpus import Piece

MAX_TRANSPOSE = 6  # ±6 semitones already reach all 12 keys


def transpose_tokens(tokens: Iterable[str], semitones: int) -> tuple[str, ...]:
    """``tokens`` moved by ``semitones``; notes leaving 21..108 are dropped."""
    moved = (transpose_token(t, semitones) for t in tokens)
    return tuple(t for t in moved if t is not None)


def transpose_records(records: Iterable[TokenRecord], semitones: int) -> tuple[TokenRecord, ...]:
    """Records moved by ``semitones``, their pitches with their tokens; as with
    :func:`transpose_tokens`, a note leaving 21..108 is dropped."""
    moved = ((transpose_token(r.token, semitones), r) for r in records)
    return tuple(TokenRecord(token, r.onset, r.length, r.velocity, r.lowest + semitones, r.highest + semitones,
                             r.notes, r.onset_s) for token, r in moved if token is not None)


def transpose_piece(piece: Piece, semitones: int) -> Piece:
    """A piece in another key; its name says which (``op10.mid@+3``) so copies stay apart."""
    if semitones == 0:
        return piece
    name = f"{piece.name}@{semitones:+d}"
    if piece.records is None:
        return Piece(name, piece.sha256, transpose_tokens(piece.tokens, semitones))
    records = transpose_records(piece.records, semitones)
    return Piece(name, piece.sha256, tuple(r.token for r in records), records)


def augment_pieces(pieces: Sequence[Piece], max_semitones: int) -> list[Piece]:
    """Every piece in all its transpositions by −K…+K semitones (the original included, first)."""
    if not 0 <= max_semitones <= MAX_TRANSPOSE:
        raise ValueError(f"transpose must be in range 0..{MAX_TRANSPOSE}, got {max_semitones}")
    shifts = [0, *(s for k in range(1, max_semitones + 1) for s in (-k, k))]
    return [transpose_piece(p, s) for p in pieces for s in shifts]
