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
from dataclasses import dataclass
from fractions import Fraction
from itertools import groupby
from pathlib import Path

import mido

from daemon.tokens import chord_token

DRUM_CHANNEL = 9  # channel 10, 0-indexed: General MIDI percussion
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
        raise MidiReadError(f"{Path(path).name}: not a readable MIDI file ({err or type(err).__name__})") from err
    if midi.ticks_per_beat <= 0:
        raise MidiReadError(f"{Path(path).name}: invalid ticks per beat {midi.ticks_per_beat}")
    # Type 2 files hold independent sequences; reading them one after another is the
    # only order that means something, the others merge into one timeline.
    tracks = midi.tracks if midi.type == 2 else [mido.merge_tracks(midi.tracks)]
    notes: list[Note] = []
    for track in tracks:
        notes.extend(_read_track(track, midi.ticks_per_beat))
    notes.sort(key=lambda n: (n.start_beats, n.pitch))
    return notes


def _read_track(track: mido.MidiTrack, ticks_per_beat: int) -> list[Note]:
    tempo = DEFAULT_TEMPO
    ticks = 0
    seconds = 0.0
    sounding: dict[tuple[int, int], tuple[int, float, int]] = {}
    notes: list[Note] = []

    def end(key: tuple[int, int], at_s: float) -> None:
        start_ticks, start_s, velocity = sounding.pop(key)
        notes.append(Note(key[1], velocity, quantise_onset(start_ticks / ticks_per_beat),
                          start_s, max(at_s - start_s, 0.0)))

    for msg in track:
        ticks += msg.time
        seconds += mido.tick2second(msg.time, ticks_per_beat, tempo)
        if msg.type == "set_tempo":
            tempo = msg.tempo
        elif msg.type in ("note_on", "note_off") and msg.channel != DRUM_CHANNEL:
            key = (msg.channel, msg.note)
            if key in sounding:  # a repeated note-on also ends the previous one
                end(key, seconds)
            if msg.type == "note_on" and msg.velocity > 0:
                sounding[key] = (ticks, seconds, msg.velocity)
    for key in list(sounding):
        end(key, seconds)
    return notes


def tokens_from_notes(notes: list[Note]) -> list[str]:
    """One token per distinct quantised onset: a note name, or a chord's normal order."""
    return [chord_token(n.pitch for n in group)
            for _, group in groupby(notes, key=lambda n: n.start_beats)]


def read_tokens(path: str | os.PathLike[str]) -> list[str]:
    """The token sequence of a MIDI file (empty when it has no pitched notes)."""
    return tokens_from_notes(read_notes(path))
