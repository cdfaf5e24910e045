"""Note and chord tokens: the vocabulary shared by the trainer and the daemon.

A single note is spelled as music21 spells a MIDI number (``C4`` is MIDI 60, ``E-4`` is 63,
``B-3`` is 58). Notes that start together form a chord token: their pitch classes in
music21's *normal order*, joined by dots (C-E-G is ``0.4.7``, D-F-A-C is ``9.0.2.5``).
Octave doublings collapse, so C3+C4 is the single pitch class ``0``.

This module must not import music21 (the daemon uses it); ``tests/test_tokens.py`` checks
:func:`normal_order` against music21 for all 4,095 non-empty pitch-class sets.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache

PITCH_NAMES = ("C", "C#", "D", "E-", "E", "F", "F#", "G", "G#", "A", "B-", "B")
_NAME_TO_PC = {name: pc for pc, name in enumerate(PITCH_NAMES)}

LOWEST_PIANO_KEY = 21  # A0
HIGHEST_PIANO_KEY = 108  # C8
MIDDLE_C = 60


def note_name(midi: int) -> str:
    """Spell a MIDI note number as music21 does: 60 -> ``C4``, 63 -> ``E-4``."""
    if not 0 <= midi <= 127:
        raise ValueError(f"note must be in range 0..127, got {midi}")
    return f"{PITCH_NAMES[midi % 12]}{midi // 12 - 1}"


def parse_note_name(name: str) -> int:
    """The MIDI number of a single-note token such as ``C#4`` or ``E--1``."""
    # "-" is both the flat sign and a negative octave's sign: as in music21, a two-letter
    # pitch name (``E-``, ``C#``) wins, so ``E-4`` is E-flat 4 and ``C-1`` is C in octave -1.
    for pitch in (name[:2], name[:1]):
        if pitch in _NAME_TO_PC:
            octave = name[len(pitch):]
            break
    else:
        raise ValueError(f"not a note token: {name!r}")
    try:
        midi = (int(octave) + 1) * 12 + _NAME_TO_PC[pitch]
    except ValueError:
        raise ValueError(f"not a note token: {name!r}") from None
    if not 0 <= midi <= 127:
        raise ValueError(f"note token {name!r} is outside MIDI range 0..127")
    return midi


@lru_cache(maxsize=4096)
def _normal_order_of_set(pcs: frozenset[int]) -> tuple[int, ...]:
    ordered = sorted(pcs)
    n = len(ordered)
    if n == 1:
        return (ordered[0],)
    rotations = [ordered[i:] + ordered[:i] for i in range(n)]

    def packing(rotation: list[int]) -> tuple[int, ...]:
        # Forte's rule, as music21 applies it: the smallest span from first to last, then
        # the smallest interval from the first to the second, to the third, and so on;
        # a rotation still tied (a symmetric set) starts on the lowest pitch class.
        first = rotation[0]
        span = (rotation[-1] - first) % 12
        return (span, *((rotation[k] - first) % 12 for k in range(1, n - 1)), first)

    return tuple(min(rotations, key=packing))


def normal_order(pitch_classes: Iterable[int]) -> tuple[int, ...]:
    """Pitch classes of a chord in music21's normal order (duplicates collapse).

    Raises ``ValueError`` for an empty set or a value outside 0..11.
    """
    pcs = frozenset(pitch_classes)
    if not pcs:
        raise ValueError("a chord needs at least one pitch class")
    if any(not 0 <= pc <= 11 for pc in pcs):
        raise ValueError(f"pitch classes must be in range 0..11, got {sorted(pcs)}")
    return _normal_order_of_set(pcs)


def chord_token(notes: Iterable[int]) -> str:
    """The token for MIDI notes that start together.

    One distinct note gives its spelled name (``C4``); two or more give the normal order
    of their pitch classes (``0.4.7``). Octave doublings alone (C3+C4) give ``0``, as
    music21 does for a chord whose pitches share one pitch class.
    """
    distinct = sorted(set(notes))
    if not distinct:
        raise ValueError("a token needs at least one note")
    if len(distinct) == 1:
        return note_name(distinct[0])
    return ".".join(str(pc) for pc in normal_order(n % 12 for n in distinct))


def is_chord(token: str) -> bool:
    """True for a chord token (``0.4.7``, or a lone pitch class ``0``)."""
    return token[:1].isdigit()


def token_pitch_classes(token: str) -> tuple[int, ...]:
    """The pitch classes a token names, in token order."""
    if is_chord(token):
        try:
            pcs = tuple(int(part) for part in token.split("."))
        except ValueError:
            raise ValueError(f"not a chord token: {token!r}") from None
        if any(not 0 <= pc <= 11 for pc in pcs):
            raise ValueError(f"not a chord token: {token!r}")
        return pcs
    return (parse_note_name(token) % 12,)


def clamp_to_piano(note: int) -> int:
    """Move a note by octaves into the piano's range 21..108."""
    while note < LOWEST_PIANO_KEY:
        note += 12
    while note > HIGHEST_PIANO_KEY:
        note -= 12
    return note


def token_pitches(token: str, register: int = MIDDLE_C) -> list[int]:
    """The MIDI notes to play for a token, lowest first, all within 21..108.

    A single note keeps its own octave. A chord has none, so it is voiced upwards from
    its first pitch class, placed as near ``register`` as possible: the player's
    register keeps the answer in the hand the musician is using.
    """
    if not is_chord(token):
        return [clamp_to_piano(parse_note_name(token))]
    pcs = token_pitch_classes(token)
    root = register - ((register - pcs[0]) % 12)
    if register - root > 6:
        root += 12
    notes = [root]
    for pc in pcs[1:]:
        notes.append(notes[-1] + (pc - notes[-1]) % 12)
    # Keep the whole chord on the keyboard by moving it as one block.
    while notes[-1] > HIGHEST_PIANO_KEY:
        notes = [n - 12 for n in notes]
    while notes[0] < LOWEST_PIANO_KEY:
        notes = [n + 12 for n in notes]
    return notes


def transpose_token(token: str, semitones: int) -> str | None:
    """A token moved by ``semitones``; ``None`` when a note leaves 21..108.

    Chords are re-derived from the shifted pitch classes (normal order again), never by
    shifting the strings, because the rotation that is most packed can change.
    """
    if is_chord(token):
        pcs = [(pc + semitones) % 12 for pc in token_pitch_classes(token)]
        return ".".join(str(pc) for pc in normal_order(pcs))
    note = parse_note_name(token) + semitones
    if not LOWEST_PIANO_KEY <= note <= HIGHEST_PIANO_KEY:
        return None
    return note_name(note)


def encode(tokens: Sequence[str], vocabulary: dict[str, int]) -> list[int]:
    """Ids of the tokens that are in the vocabulary; unknown tokens are dropped."""
    return [vocabulary[t] for t in tokens if t in vocabulary]
