"""The scrolling piano roll of ``mididuet watch``: the player and mididuet, velocity as shade.

:class:`Roll` keeps the notes of the last :data:`KEEP_S` from the ``note`` events;
:func:`render_roll` draws them: time to the right (now at the right edge, one column per
:data:`COLUMN_MS`), pitch upwards, two semitones per text row (the upper half block ``▀``
takes the upper one's colour, its background the lower one's). The pitch range follows
the notes and moves only when one falls outside it, so the roll does not jitter.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from rich.color import Color
from rich.style import Style
from rich.text import Text

from ..music.tokens import note_name
from ..music.units import NS_PER_MS, NS_PER_S

KEEP_S = 60.0
COLUMN_MS = 100
LABEL = 4  # columns of pitch names at the left
PLAYER, MIDIDUET = "in", "out"
# Hue and saturation of each side; velocity sets the lightness (a soft note is dark).
HUES = {PLAYER: (0.56, 0.85), MIDIDUET: (0.08, 0.95)}
SHADES = 8
BOTH = Color.from_rgb(235, 235, 235)  # the two sides on one semitone at once
_BOTH = 1000


def _hls(hue: float, lightness: float, saturation: float) -> Color:
    import colorsys

    r, g, b = colorsys.hls_to_rgb(hue, lightness, saturation)
    return Color.from_rgb(r * 255, g * 255, b * 255)


_COLOURS = {side: [_hls(hue, 0.25 + 0.5 * (shade + 1) / SHADES, sat) for shade in range(SHADES)]
            for side, (hue, sat) in HUES.items()}


def colour(side: str, velocity: int) -> Color:
    """The colour of a note of ``side`` at ``velocity`` (1..127)."""
    return _COLOURS[side][min(max(velocity, 1), 127) * SHADES // 128]


@dataclass(slots=True)
class Span:
    side: str
    pitch: int
    velocity: int
    start: int
    end: int | None = None  # None while it sounds


class Roll:
    """The notes seen, from ``note`` events (:mod:`..live.control.protocol`)."""

    def __init__(self, keep_s: float = KEEP_S) -> None:
        self.spans: deque[Span] = deque()
        self._open: dict[tuple[str, int, int], Span] = {}
        self.keep_ns = int(keep_s * NS_PER_S)
        self.low = 48  # the lowest pitch drawn (moved by render_roll)
        self.changes = 0  # note events taken: the roll needs drawing again


    def note(self, event: dict) -> None:
        self.changes += 1
        key = (event["side"], event["channel"], event["note"])
        sounding = self._open.pop(key, None)
        if sounding is not None:
            sounding.end = event["t"]
        if event["on"]:
            span = Span(event["side"], event["note"], event["velocity"], event["t"])
            self.spans.append(span)
            self._open[key] = span

    def end_all(self, t_ns: int) -> None:
        """End every sounding note (the daemon went away: their note-offs will not come)."""
        for span in self._open.values():
            span.end = t_ns
        self._open.clear()

    def trim(self, now_ns: int) -> None:
        cutoff = now_ns - self.keep_ns
        spans = self.spans
        while spans and spans[0].end is not None and spans[0].end < cutoff:
            spans.popleft()
        while len(spans) > 20_000:  # notes that never ended, under a flood
            spans.popleft()


_STYLES: dict[tuple[Color | None, Color | None], Style] = {}


def _style(fg: Color | None, bg: Color | None) -> Style:
    style = _STYLES.get((fg, bg))
    if style is None:
        style = _STYLES[(fg, bg)] = Style(color=fg, bgcolor=bg)
    return style


def render_roll(roll: Roll, now_ns: int, width: int, height: int, column_ms: int = COLUMN_MS) -> Text:
    """The roll as ``height`` lines of ``width`` cells."""
    cols = max(width - LABEL, 1)
    rows = max(height, 1)
    column_ns = column_ms * NS_PER_MS
    t0 = now_ns - cols * column_ns
    visible = [s for s in roll.spans if (s.end is None or s.end >= t0) and s.start <= now_ns]
    span = 2 * rows  # semitones shown
    if visible:
        lowest, highest = min(s.pitch for s in visible), max(s.pitch for s in visible)
        if lowest < roll.low or highest >= roll.low + span:
            roll.low = (lowest + highest) // 2 - span // 2
    roll.low = min(max(roll.low, 0), max(128 - span, 0))
    low = roll.low
    # grid[pitch - low][column]: the loudest note there, + for the player, - for mididuet, or BOTH.
    grid = [[0] * cols for _ in range(span)]
    for s in visible:
        index = s.pitch - low
        if not 0 <= index < span:
            continue
        first = max((s.start - t0) // column_ns, 0)
        last = min(((now_ns if s.end is None else s.end) - t0) // column_ns, cols - 1)
        code = max(s.velocity, 1) * (1 if s.side == PLAYER else -1)
        cells = grid[index]
        for c in range(first, last + 1):
            here = cells[c]
            if here == 0 or (here != _BOTH and (here > 0) == (code > 0) and abs(code) > abs(here)):
                cells[c] = code
            elif here != _BOTH and (here > 0) != (code > 0):
                cells[c] = _BOTH
    text = Text(no_wrap=True, overflow="crop", end="")
    for r in range(rows):
        upper = low + 2 * (rows - 1 - r) + 1
        lower = upper - 1
        label = next((note_name(p) for p in (upper, lower) if p % 12 == 0 and 0 <= p < 128), "")
        text.append(f"{label:<{LABEL - 1}} ", style="dim")
        top = [_colour_of(code) for code in grid[upper - low]]
        bottom = [_colour_of(code) for code in grid[lower - low]]
        run, run_style = [], None
        for c in range(cols):
            fg, bg = top[c], bottom[c]
            if fg is not None:
                char, style = "▀", _style(fg, bg)
            elif bg is not None:
                char, style = "▄", _style(bg, None)
            else:
                char, style = " ", None
            if style is not run_style and run:
                text.append("".join(run), run_style)
                run = []
            run.append(char)
            run_style = style
        if run:
            text.append("".join(run), run_style)
        if r < rows - 1:
            text.append("\n")
    return text


def _colour_of(code: int) -> Color | None:
    if code == 0:
        return None
    if code == _BOTH:
        return BOTH
    return colour(PLAYER, code) if code > 0 else colour(MIDIDUET, -code)
