"""The piano roll's drawing: two colours, velocity as shade, a range that follows the notes."""

from __future__ import annotations

from mididuet.daemon.music.units import NS_PER_MS as MS
from mididuet.daemon.watch.roll import BOTH, MIDIDUET, PLAYER, Roll, colour, render_roll


def note(roll: Roll, side: str, pitch: int, velocity: int, start_ms: int, end_ms: int) -> None:
    roll.note({"side": side, "channel": 1, "note": pitch, "velocity": velocity, "on": True, "t": start_ms * MS})
    roll.note({"side": side, "channel": 1, "note": pitch, "velocity": 0, "on": False, "t": end_ms * MS})


def colours_in(text) -> set:
    return {span.style.color for span in text.spans if getattr(span.style, "color", None) is not None} | \
        {span.style.bgcolor for span in text.spans if getattr(span.style, "bgcolor", None) is not None}


def test_the_player_and_mididuet_in_two_colours_with_velocity_as_shade() -> None:
    assert colour(PLAYER, 100) != colour(MIDIDUET, 100)
    assert colour(PLAYER, 20) != colour(PLAYER, 120), "velocity shades the colour"
    roll = Roll()
    note(roll, PLAYER, 60, 100, 0, 400)
    note(roll, MIDIDUET, 64, 30, 500, 900)
    text = render_roll(roll, 1000 * MS, 40, 10)
    lines = text.plain.split("\n")
    assert len(lines) == 10 and all(len(line) == 40 for line in lines)
    assert {colour(PLAYER, 100), colour(MIDIDUET, 30)} <= colours_in(text)
    assert "C4" in text.plain  # the rows are labelled at each C


def test_the_range_follows_the_notes_and_both_sides_on_one_note_show_as_such() -> None:
    roll = Roll()
    note(roll, PLAYER, 100, 80, 0, 500)
    text = render_roll(roll, 600 * MS, 30, 6)
    assert roll.low <= 100 < roll.low + 12 and ("▀" in text.plain or "▄" in text.plain)
    note(roll, PLAYER, 30, 80, 5000, 5400)  # once the high note has scrolled away
    note(roll, MIDIDUET, 30, 80, 5000, 5400)
    text = render_roll(roll, 5500 * MS, 30, 6)
    assert roll.low <= 30 < roll.low + 12
    assert BOTH in colours_in(text)


def test_old_notes_are_forgotten_and_a_lost_daemon_s_notes_end() -> None:
    roll = Roll(keep_s=1.0)
    note(roll, PLAYER, 60, 80, 0, 100)
    roll.note({"side": MIDIDUET, "channel": 1, "note": 62, "velocity": 80, "on": True, "t": 200 * MS})
    roll.trim(2000 * MS)
    assert [s.pitch for s in roll.spans] == [62]
    roll.end_all(2100 * MS)
    assert roll.spans[0].end == 2100 * MS
