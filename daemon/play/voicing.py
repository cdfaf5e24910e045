"""Which notes a token sounds as, and how loud."""

from __future__ import annotations

from ..music.midi import MAX_DATA
from ..music.tokens import HIGHEST_PIANO_KEY, LOWEST_PIANO_KEY, clamp_to_piano, token_pitch_classes, token_pitches

DEFAULT_VELOCITY = 80


def voice(token: str, register: int) -> list[int]:
    """The notes to play for a token: chords near ``register``, single notes in their octave."""
    notes = token_pitches(token, register)
    # token_pitches already keeps to 21..108; clamp again so the promise holds by construction.
    return [n if LOWEST_PIANO_KEY <= n <= HIGHEST_PIANO_KEY else clamp_to_piano(n) for n in notes]


def velocity_for(fixed: int | None, player_median: float | None, offset: int = 0) -> int:
    """The velocity to play: ``fixed`` if given, else the player's level plus ``offset``
    (the predicted contour), within 1..127."""
    if fixed is not None:
        return fixed
    level = DEFAULT_VELOCITY if player_median is None else round(player_median)
    return min(max(level + offset, 1), MAX_DATA)


def voice_chord(token: str, octave: int, bass: int, spread: int, doubled: int) -> list[int]:
    """A chord token voiced as predicted: its ``bass``-th pitch class (normal order) in
    ``octave``, the others closely stacked to reach about ``spread`` semitones above it
    (a left-hand bass under a right-hand chord when the spread is wide), and ``doubled``
    more notes doubling pitch classes in octaves between. All on the piano."""
    pcs = token_pitch_classes(token)
    bass_pc = pcs[min(bass, len(pcs) - 1)]
    at = pcs.index(bass_pc)
    low = 12 * (octave + 1) + bass_pc
    notes = [low]
    start = low + max(1, spread - 11)  # the upper voices sit close together below the top
    for pc in pcs[at + 1:] + pcs[:at]:
        note = start + (pc - start) % 12
        while note <= notes[-1]:
            note += 12
        notes.append(note)  # so the notes rise
    if doubled > 0:
        # Doublings between the bass and the top: the bass's octaves first, then the top's,
        # then the rest; and above the top when the chord is too close for them (spread and
        # doublings are predicted apart, but a doubling needs an octave).
        top = notes[-1]
        order = {bass_pc: 0, top % 12: 1}
        free = sorted((n for n in range(low + 1, top) if n % 12 in pcs and n not in notes),
                      key=lambda n: (order.get(n % 12, 2), n))
        above = [n + 12 for n in notes if n + 12 > top]
        notes = sorted(notes + (free + above)[:doubled])
    while notes[-1] > HIGHEST_PIANO_KEY:
        notes = [n - 12 for n in notes]
    while notes[0] < LOWEST_PIANO_KEY:
        notes = [n + 12 for n in notes]
    return [n for n in notes if LOWEST_PIANO_KEY <= n <= HIGHEST_PIANO_KEY]
