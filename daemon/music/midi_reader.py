"""Read a standard MIDI file into notes and tokens with mido (no music21).

Used by the trainer for whole corpora and by the daemon for primer files.

Notes that start together become one chord token. "Together" means the same onset
after snapping it to the nearer of two grids, a sixteenth (1/4 beat) or an eighth-note
triplet (1/3 beat): that is the grid music21 quantises MIDI onsets to by default
(``quarterLengthDivisors=(4, 3)``), so the tokens match the reference notebook's reading,
and it absorbs the few milliseconds by which a performed chord's notes are spread.
"""

from __future__ import annotations

import os
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from itertools import groupby
from pathlib import Path

import mido

from .midi import DRUM_CHANNEL
from .tokens import chord_token

DEFAULT_TEMPO = 500_000  # microseconds per beat (120 BPM) until a set_tempo says otherwise


class MidiReadError(ValueError):
    """A file that is not a readable standard MIDI file."""


@dataclass(frozen=True, slots=True)
class Note:
    pitch: int
    velocity: int
    start_beats: Fraction  # quantised onset, in quarter notes
    start_s: float  # real onset, seconds, tempo changes respected
    duration_s: float


def quantise_onset(beats: float) -> Fraction:
    """Snap an onset in beats to the nearer of the 1/4 and 1/3 beat grids."""
    quarter = Fraction(round(beats * 4), 4)
    triplet = Fraction(round(beats * 3), 3)
    return quarter if abs(beats - quarter) <= abs(beats - triplet) else triplet


def read_notes(path: str | os.PathLike[str]) -> list[Note]:
    """All pitched notes of all tracks in onset order (drums on channel 10 excluded).

    A note-on with velocity 0 ends a note. A note still sounding at the end of the file
    ends there. Raises :class:`MidiReadError` for a corrupt or truncated file.
    """
    try:
        midi = mido.MidiFile(path, clip=True)
    except (OSError, EOFError, ValueError, KeyError, IndexError, TypeError) as err:
        # An exception object is always truthy: test its text, or an empty file's bare
        # EOFError would be reported as "()".
        detail = str(err) or ("the file ends too early" if isinstance(err, EOFError) else type(err).__name__)
        raise MidiReadError(f"{Path(path).name}: not a readable MIDI file ({detail})") from err
    if midi.ticks_per_beat <= 0:
        raise MidiReadError(f"{Path(path).name}: invalid ticks per beat {midi.ticks_per_beat}")
    # Type 2 files hold independent sequences, each read on its own; the tracks of the
    # other types share one timeline.
    groups = [[track] for track in midi.tracks] if midi.type == 2 else [midi.tracks]
    notes: list[Note] = []
    for tracks in groups:
        notes.extend(_read_tracks(tracks, midi.ticks_per_beat))
    notes.sort(key=lambda n: (n.start_beats, n.pitch))
    return notes


def _read_tracks(tracks: list[mido.MidiTrack], ticks_per_beat: int) -> list[Note]:
    """Notes of tracks that share a timeline.

    Events are merged by (tick, track, position), the order ``mido.merge_tracks`` gives,
    without copying every message as it does: that copy was most of the reader's time.
    """
    events: list[tuple[int, int, int, bool, int, int, int]] = []
    tempo_changes: list[tuple[int, int, int, int]] = []
    last_tick = 0
    for track_no, track in enumerate(tracks):
        tick = 0
        for position, msg in enumerate(track):
            tick += msg.time
            kind = msg.type
            if kind == "note_on" or kind == "note_off":
                if msg.channel != DRUM_CHANNEL:
                    starts = kind == "note_on" and msg.velocity > 0
                    events.append((tick, track_no, position, starts, msg.channel, msg.note, msg.velocity))
            elif kind == "set_tempo":
                tempo_changes.append((tick, track_no, position, msg.tempo))
        last_tick = max(last_tick, tick)
    events.sort()
    seconds_at = _tempo_map(sorted(tempo_changes), ticks_per_beat)

    sounding: dict[tuple[int, int], tuple[int, float, int]] = {}
    notes: list[Note] = []

    def end(key: tuple[int, int], at_s: float) -> None:
        start_tick, start_s, velocity = sounding.pop(key)
        notes.append(Note(key[1], velocity, quantise_onset(start_tick / ticks_per_beat),
                          start_s, max(at_s - start_s, 0.0)))

    for tick, _track, _position, starts, channel, note, velocity in events:
        seconds = seconds_at(tick)
        key = (channel, note)
        if key in sounding:  # a repeated note-on also ends the previous one
            end(key, seconds)
        if starts:
            sounding[key] = (tick, seconds, velocity)
    file_end = seconds_at(last_tick)
    for key in list(sounding):
        end(key, file_end)
    return notes


def _tempo_map(changes: list[tuple[int, int, int, int]], ticks_per_beat: int) -> Callable[[int], float]:
    """A function from tick to seconds, honouring every tempo change."""
    ticks, seconds, tempos = [0], [0.0], [DEFAULT_TEMPO]
    for tick, _track, _position, tempo in changes:
        seconds.append(seconds[-1] + (tick - ticks[-1]) * tempos[-1] / (ticks_per_beat * 1e6))
        ticks.append(tick)
        tempos.append(tempo)

    def seconds_at(tick: int) -> float:
        i = bisect_right(ticks, tick) - 1
        return seconds[i] + (tick - ticks[i]) * tempos[i] / (ticks_per_beat * 1e6)

    return seconds_at


def tokens_from_notes(notes: list[Note]) -> list[str]:
    """One token per distinct quantised onset: a note name, or a chord's normal order."""
    return [chord_token(n.pitch for n in group)
            for _, group in groupby(notes, key=lambda n: n.start_beats)]


def read_tokens(path: str | os.PathLike[str]) -> list[str]:
    """The token sequence of a MIDI file (empty when it has no pitched notes)."""
    return tokens_from_notes(read_notes(path))
