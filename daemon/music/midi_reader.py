"""Read a standard MIDI file into notes, tokens and how each token is played, with mido.

Used by the trainer for whole corpora and by the daemon for primer files (no music21).

Notes that start together become one chord token. "Together" means the same onset
after snapping it to the nearer of two grids, a sixteenth (1/4 beat) or an eighth-note
triplet (1/3 beat): that is the grid music21 quantises MIDI onsets to by default
(``quarterLengthDivisors=(4, 3)``), so the tokens match the reference notebook's reading,
and it absorbs the few milliseconds by which a performed chord's notes are spread.

Each note also keeps how long it sounds with the sustain pedal (CC 64) applied: a key
released while its channel's pedal is down sounds on until the pedal comes up, or until
the same key is struck again. :func:`token_records` gathers, per token, what the
expressive attributes are derived from (:mod:`.expression`).
"""

from __future__ import annotations

import os
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from itertools import groupby
from pathlib import Path
from typing import Any

import mido

from .midi import DRUM_CHANNEL, SUSTAIN, SWITCH_ON
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
    duration_s: float  # the key held
    sounding_beats: float = 0.0  # the note sounding, sustain pedal applied, in beats


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """One token and how it was played: what the expressive attributes come from."""

    token: str
    onset: float  # beats, on the reader's grid
    length: float  # beats: the longest-sounding note, pedal applied
    velocity: int  # the loudest note's
    lowest: int
    highest: int
    notes: int
    onset_s: float = 0.0  # when it was played, seconds: the tempo map's rubato included

    def as_row(self) -> list[Any]:
        return [self.token, self.onset, self.length, self.velocity, self.lowest, self.highest, self.notes,
                self.onset_s]

    @classmethod
    def from_row(cls, row: list[Any]) -> TokenRecord:
        token, onset, length, velocity, lowest, highest, notes, onset_s = row
        return cls(str(token), float(onset), float(length), int(velocity), int(lowest), int(highest), int(notes),
                   float(onset_s))


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
    return read_performance(path)[0]


def read_performance(path: str | os.PathLike[str]) -> tuple[list[Note], list[tuple[float, bool]]]:
    """:func:`read_notes`, and the sustain pedal's changes as ``(seconds, down)`` in time
    order (all channels but the drums'). Raises :class:`MidiReadError`."""
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
    pedals: list[tuple[float, bool]] = []
    for tracks in groups:
        found, changes = _read_tracks(tracks, midi.ticks_per_beat)
        notes.extend(found)
        pedals.extend(changes)
    notes.sort(key=lambda n: (n.start_beats, n.pitch))
    return notes, sorted(pedals)


def _read_tracks(tracks: list[mido.MidiTrack], ticks_per_beat: int) -> tuple[list[Note], list[tuple[float, bool]]]:
    """Notes of tracks that share a timeline.

    Events are merged by (tick, track, position), the order ``mido.merge_tracks`` gives,
    without copying every message as it does: that copy was most of the reader's time.
    """
    # (tick, track, position, kind, channel, note, velocity); kind 0: note-off, 1: note-on,
    # 2: pedal (note = 1 when down).
    events: list[tuple[int, int, int, int, int, int, int]] = []
    tempo_changes: list[tuple[int, int, int, int]] = []
    last_tick = 0
    for track_no, track in enumerate(tracks):
        tick = 0
        for position, msg in enumerate(track):
            tick += msg.time
            kind = msg.type
            if kind == "note_on" or kind == "note_off":
                if msg.channel != DRUM_CHANNEL:
                    starts = int(kind == "note_on" and msg.velocity > 0)
                    events.append((tick, track_no, position, starts, msg.channel, msg.note, msg.velocity))
            elif kind == "control_change" and msg.control == SUSTAIN:
                events.append((tick, track_no, position, 2, msg.channel, int(msg.value >= SWITCH_ON), 0))
            elif kind == "set_tempo":
                tempo_changes.append((tick, track_no, position, msg.tempo))
        last_tick = max(last_tick, tick)
    events.sort()
    seconds_at = _tempo_map(sorted(tempo_changes), ticks_per_beat)

    sounding: dict[tuple[int, int], tuple[int, float, int]] = {}  # keys held: start tick, s, velocity
    # Keys released under the pedal: start tick, s, velocity, release s; they sound on.
    sustained: dict[tuple[int, int], tuple[int, float, int, float]] = {}
    pedal_down: set[int] = set()
    notes: list[Note] = []
    pedals: list[tuple[float, bool]] = []

    def note(key: tuple[int, int], start_tick: int, start_s: float, velocity: int, released_s: float,
             silent_tick: int) -> None:
        notes.append(Note(key[1], velocity, quantise_onset(start_tick / ticks_per_beat), start_s,
                          max(released_s - start_s, 0.0), max(silent_tick - start_tick, 0) / ticks_per_beat))

    def release(key: tuple[int, int], tick: int, seconds: float) -> None:
        start_tick, start_s, velocity = sounding.pop(key)
        if key[0] in pedal_down:
            sustained[key] = (start_tick, start_s, velocity, seconds)
        else:
            note(key, start_tick, start_s, velocity, seconds, tick)

    def silence(key: tuple[int, int], tick: int) -> None:
        start_tick, start_s, velocity, released_s = sustained.pop(key)
        note(key, start_tick, start_s, velocity, released_s, tick)

    for tick, _track, _position, kind, channel, number, velocity in events:
        seconds = seconds_at(tick)
        if kind == 2:
            if channel != DRUM_CHANNEL:
                pedals.append((seconds, bool(number)))
            if number:
                pedal_down.add(channel)
            else:
                pedal_down.discard(channel)
                for key in [k for k in sustained if k[0] == channel]:
                    silence(key, tick)
            continue
        key = (channel, number)
        if key in sounding:  # a repeated note-on also ends the previous one
            release(key, tick, seconds)
        if kind == 1:
            if key in sustained:  # struck again: the pedalled one stops
                silence(key, tick)
            sounding[key] = (tick, seconds, velocity)
    file_end = seconds_at(last_tick)
    for key in list(sounding):
        start_tick, start_s, velocity = sounding.pop(key)
        note(key, start_tick, start_s, velocity, file_end, last_tick)
    for key in list(sustained):
        silence(key, last_tick)
    return notes, pedals


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


def token_records(notes: list[Note]) -> list[TokenRecord]:
    """One record per distinct quantised onset, in order (the tokens of :func:`tokens_from_notes`)."""
    records = []
    for onset, group in groupby(notes, key=lambda n: n.start_beats):
        chord = list(group)
        pitches = [n.pitch for n in chord]
        records.append(TokenRecord(chord_token(pitches), float(onset), max(n.sounding_beats for n in chord),
                                   max(n.velocity for n in chord), min(pitches), max(pitches), len(chord),
                                   min(n.start_s for n in chord)))
    return records


def read_tokens(path: str | os.PathLike[str]) -> list[str]:
    """The token sequence of a MIDI file (empty when it has no pitched notes)."""
    return tokens_from_notes(read_notes(path))


def read_records(path: str | os.PathLike[str]) -> list[TokenRecord]:
    """The tokens of a MIDI file with how each was played (empty when it has no pitched notes)."""
    return token_records(read_notes(path))
