"""When an expressive token sounds and for how long, in the unit of the pulse.

The model predicts a token's delay after the one before and its length as ratios of the
pulse (:mod:`..music.expression`); here they become nanoseconds. Two rules hold whatever
it predicts: an onset is never scheduled in the past (a late decision plays at once),
and a note never sounds longer than :data:`MAX_NOTE_NS`. In jam the onset is snapped to
the player's grid (quarters and triplets of the pulse from the player's last onset), so
mididuet stays on the beat it shares with the player.
"""

from __future__ import annotations

import numpy as np

from ..music.units import NS_PER_MS, NS_PER_S, bpm_to_ns
from .pulse import MIN_BPM

MAX_NOTE_NS = 6 * NS_PER_S  # a pedalled chord may ring for bars, but not for ever
MIN_NOTE_NS = 30 * NS_PER_MS  # shorter and a synth barely sounds it
MIN_AHEAD_NS = NS_PER_MS  # the soonest an onset decided now may be
GRID_DIVISIONS = (4, 3)  # the reader's grid: sixteenths and triplets of the pulse
# The unit is the tokens' own running median IOI, not a beat: Chopin's passagework runs it
# far below the pulse rhythm's 300 BPM floor (most of the corpus does), so it has its own.
MIN_UNIT_NS = 50 * NS_PER_MS


def clamp_unit(pulse_ns: float) -> int:
    """The window's pulse, as the unit of delays and lengths: within MIN_UNIT_NS and the slowest pulse."""
    return int(min(max(pulse_ns, MIN_UNIT_NS), bpm_to_ns(MIN_BPM)))


def note_length_ns(ratio: float, pulse_ns: float) -> int:
    """A predicted length (× the pulse) in ns, within MIN_NOTE_NS..MAX_NOTE_NS."""
    return int(min(max(ratio * pulse_ns, MIN_NOTE_NS), MAX_NOTE_NS))


def reaching(drawn_ns: int, until_ns: int, ratios: np.ndarray, pulse_ns: float, probs: np.ndarray,
             u: float | None) -> int:
    """A note's length that lasts until ``until_ns`` after its onset (a legato note):
    ``drawn_ns`` if it does; else one of the lengths ``ratios`` × ``pulse_ns`` (as
    :func:`note_length_ns` plays them) that do, drawn by ``u`` in proportion to ``probs``
    (None: the likeliest); else exactly ``until_ns``. Never past :data:`MAX_NOTE_NS`."""
    until_ns = min(until_ns, MAX_NOTE_NS)
    if drawn_ns >= until_ns:
        return drawn_ns
    lengths_ns = np.clip(ratios * pulse_ns, MIN_NOTE_NS, MAX_NOTE_NS).astype(np.int64)
    weights = np.where(lengths_ns >= until_ns, probs, 0.0)
    total = float(weights.sum())
    if total <= 0.0:
        return until_ns
    if u is None:
        return int(lengths_ns[int(np.argmax(weights))])
    pick = int(np.searchsorted(np.cumsum(weights), u * total, side="right"))
    return int(lengths_ns[min(pick, len(lengths_ns) - 1)])


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
