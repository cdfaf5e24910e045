"""Draw a call and its answer as a piano roll PNG (matplotlib, imported only when drawing)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..engine.simulate import TimedMessage
from ..music.tokens import note_name
from ..music.units import NS_PER_S

PLAYER_COLOUR = "#1f77b4"
MIDIDUET_COLOUR = "#ff7f0e"
FIGURE_INCHES = (12, 5)
DPI = 100  # so the image is 1200 x 500 pixels


@dataclass(frozen=True)
class RollNote:
    pitch: int
    start_s: float
    end_s: float
    velocity: int


def notes_from_events(events: Sequence[TimedMessage]) -> list[RollNote]:
    """Pair note-ons with their note-offs; a note never ended lasts to the last event."""
    sounding: dict[tuple[int, int], tuple[int, int]] = {}
    notes = []
    last = max((t for t, _ in events), default=0)
    for t_ns, msg in events:
        if msg.type not in ("note_on", "note_off"):
            continue
        key = (msg.channel, msg.note)
        if key in sounding:
            start, velocity = sounding.pop(key)
            notes.append(RollNote(msg.note, start / NS_PER_S, t_ns / NS_PER_S, velocity))
        if msg.type == "note_on" and msg.velocity > 0:
            sounding[key] = (t_ns, msg.velocity)
    notes += [RollNote(key[1], start / NS_PER_S, last / NS_PER_S, v) for key, (start, v) in sounding.items()]
    return sorted(notes, key=lambda n: (n.start_s, n.pitch))


def draw_piano_roll(path: Path, call: Sequence[TimedMessage], answer: Sequence[TimedMessage],
                    title: str = "mididuet: a phrase and its answer") -> Path:
    """Write ``path`` (PNG, 1200 x 500): the player in blue, mididuet in orange.

    Raises ``ImportError`` when matplotlib is not installed.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    fig, ax = plt.subplots(figsize=FIGURE_INCHES, dpi=DPI)
    pitches = []
    for events, colour in ((call, PLAYER_COLOUR), (answer, MIDIDUET_COLOUR)):
        for n in notes_from_events(events):
            ax.broken_barh([(n.start_s, max(n.end_s - n.start_s, 0.02))], (n.pitch - 0.4, 0.8),
                           facecolors=colour, alpha=0.35 + 0.65 * n.velocity / 127)
            pitches.append(n.pitch)
    if pitches:
        low, high = min(pitches) - 2, max(pitches) + 2
        ax.set_ylim(low, high)
        ticks = [p for p in range(low, high + 1) if p % 12 in (0, 7)]  # every C and G
        ax.set_yticks(ticks, [note_name(p) for p in ticks])
    if call and answer:
        ax.axvline(answer[0][0] / NS_PER_S, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("pitch")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(handles=[Patch(color=PLAYER_COLOUR, label="player"), Patch(color=MIDIDUET_COLOUR, label="mididuet")],
              loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path
