"""Write small MIDI files for tests with mido: notes as (start beat, length, pitch, channel)."""

from __future__ import annotations

from pathlib import Path

import mido

TICKS = 480


def write_midi(path: Path, tracks: list[list[tuple[float, float, int, int]]], *,
               tempos: list[tuple[float, int]] | None = None, zero_velocity_offs: bool = False,
               midi_type: int = 1) -> Path:
    """Each track is a list of notes; ``tempos`` is (beat, bpm) changes on the first track."""
    mid = mido.MidiFile(type=midi_type, ticks_per_beat=TICKS)
    for i, notes in enumerate(tracks):
        events: list[tuple[int, int, mido.Message | mido.MetaMessage]] = []
        if i == 0:
            for beat, bpm in tempos or []:
                events.append((round(beat * TICKS), 0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm))))
        for start, length, pitch, channel in notes:
            on = mido.Message("note_on", note=pitch, velocity=80, channel=channel)
            off = (mido.Message("note_on", note=pitch, velocity=0, channel=channel) if zero_velocity_offs
                   else mido.Message("note_off", note=pitch, velocity=0, channel=channel))
            events.append((round(start * TICKS), 2, on))
            events.append((round((start + length) * TICKS), 1, off))
        events.sort(key=lambda e: (e[0], e[1]))
        track = mido.MidiTrack()
        now = 0
        for tick, _, msg in events:
            track.append(msg.copy(time=tick - now))
            now = tick
        mid.tracks.append(track)
    path.parent.mkdir(parents=True, exist_ok=True)
    mid.save(path)
    return path


def scale_piece(path: Path, length: int = 80, offset: int = 0) -> Path:
    """A one-track piece of ``length`` notes and chords, enough for several 32-token windows."""
    notes = []
    for i in range(length):
        root = 48 + (i * 5 + offset) % 24
        notes.append((i * 0.5, 0.5, root, 0))
        if i % 3 == 0:
            notes += [(i * 0.5, 0.5, root + 4, 0), (i * 0.5, 0.5, root + 7, 0)]
    return write_midi(path, [notes])
