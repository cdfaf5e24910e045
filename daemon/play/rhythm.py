"""When an expressive token sounds and for how long, in the unit of the pulse.

The model predicts a token's delay after the one before and its length as ratios of the
pulse (:mod:`..music.expression`); here they become nanoseconds. Two rules hold whatever
it predicts: an onset is never scheduled in the past (a late decision plays at once),
and a note never sounds longer than :data:`MAX_NOTE_NS`. In jam the onset is snapped to
the player's grid (quarters and triplets of the pulse from the player's last onset), so
mididuet stays on the beat it shares with the player.
"""

from __future__ import annotations

from ..music.units import NS_PER_MS, NS_PER_S

MAX_NOTE_NS = 6 * NS_PER_S  # a pedalled chord may ring for bars, but not for ever
MIN_NOTE_NS = 30 * NS_PER_MS  # shorter and a synth barely sounds it
MIN_AHEAD_NS = NS_PER_MS  # the soonest an onset decided now may be
GRID_DIVISIONS = (4, 3)  # the reader's grid: sixteenths and triplets of the pulse


def note_length_ns(ratio: float, pulse_ns: float) -> int:
    """A predicted length (× the pulse) in ns, within MIN_NOTE_NS..MAX_NOTE_NS."""
    return int(min(max(ratio * pulse_ns, MIN_NOTE_NS), MAX_NOTE_NS))


def onset_after(previous_ns: int, ratio: float, pulse_ns: float, now_ns: int) -> int:
    """The onset a predicted delay (× the pulse) gives after ``previous_ns``; never in the past."""
    return max(previous_ns + int(ratio * pulse_ns), now_ns + MIN_AHEAD_NS)


def snap_to_grid(onset_ns: int, anchor_ns: int, pulse_ns: float, after_ns: int) -> int:
    """``onset_ns`` moved to the nearest point of the pulse's grid from ``anchor_ns`` (the
    nearer of its quarters and triplets), and later than ``after_ns``."""
    best = None
    for divisions in GRID_DIVISIONS:
        step = pulse_ns / divisions
        k = round((onset_ns - anchor_ns) / step)
        while anchor_ns + k * step <= after_ns:
            k += 1
        candidate = int(anchor_ns + k * step)
        if best is None or abs(candidate - onset_ns) < abs(best - onset_ns):
            best = candidate
    assert best is not None
    return best
