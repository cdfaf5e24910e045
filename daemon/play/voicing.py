"""Which notes a token sounds as, and how loud."""

from __future__ import annotations

from ..music.midi import MAX_DATA
from ..music.tokens import HIGHEST_PIANO_KEY, LOWEST_PIANO_KEY, clamp_to_piano, token_pitches

DEFAULT_VELOCITY = 80


def voice(token: str, register: int) -> list[int]:
    """The notes to play for a token: chords near ``register``, single notes in their octave."""
    notes = token_pitches(token, register)
    # token_pitches already keeps to 21..108; clamp again so the promise holds by construction.
    return [n if LOWEST_PIANO_KEY <= n <= HIGHEST_PIANO_KEY else clamp_to_piano(n) for n in notes]


def velocity_for(fixed: int | None, player_median: int | None) -> int:
    if fixed is not None:
        return fixed
    return DEFAULT_VELOCITY if player_median is None else min(max(player_median, 1), MAX_DATA)
