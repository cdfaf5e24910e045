"""SessionRecorder: two tracks with a tempo, times kept, complete files on close and on the way."""

from __future__ import annotations

from pathlib import Path

import mido
import pytest

from daemon.record import MIDIDUET, PLAYER, TICKS_PER_BEAT, WRITE_EVERY_NS, SessionRecorder

MS = 1_000_000


def _notes(track: mido.MidiTrack) -> list[tuple[int, str, int]]:
    tick = 0
    out = []
    for msg in track:
        tick += msg.time
        if msg.type in ("note_on", "note_off"):
            out.append((tick, msg.type, msg.note))
    return out


def test_close_writes_a_two_track_file_with_tempo_and_times(tmp_path: Path) -> None:
    recorder = SessionRecorder(tmp_path)
    base = 5_000 * MS  # monotonic time does not start at zero
    recorder.record(PLAYER, mido.Message("note_on", note=60, velocity=80), base)
    recorder.record(PLAYER, mido.Message("note_off", note=60), base + 500 * MS)
    recorder.record(MIDIDUET, mido.Message("note_on", note=64, velocity=70, channel=2), base + 1000 * MS)
    recorder.record(MIDIDUET, mido.Message("note_off", note=64, channel=2), base + 1500 * MS)
    recorder.record(PLAYER, mido.Message("clock"), base)  # not a musical message: left out
    path = recorder.close()
    assert path.parent == tmp_path and path.name.startswith("mididuet-") and path.suffix == ".mid"
    midi = mido.MidiFile(path)
    assert midi.type == 1 and len(midi.tracks) == 2
    assert [t.name for t in midi.tracks] == ["player", "mididuet"]
    assert any(m.type == "set_tempo" and m.tempo == 500_000 for m in midi.tracks[0])
    # 120 BPM: 500 ms is one beat.
    assert _notes(midi.tracks[0]) == [(0, "note_on", 60), (TICKS_PER_BEAT, "note_off", 60)]
    assert _notes(midi.tracks[1]) == [(2 * TICKS_PER_BEAT, "note_on", 64), (3 * TICKS_PER_BEAT, "note_off", 64)]
    assert [m.channel for m in midi.tracks[1] if m.type == "note_on"] == [2]
    assert midi.length == pytest.approx(1.5, abs=0.01)
    assert not list(tmp_path.glob("*.tmp"))


def test_the_file_is_rewritten_while_recording(tmp_path: Path) -> None:
    recorder = SessionRecorder(tmp_path, name="s.mid")
    recorder.record(PLAYER, mido.Message("note_on", note=60, velocity=80), 0)
    assert not recorder.path.exists()
    recorder.record(PLAYER, mido.Message("note_off", note=60), WRITE_EVERY_NS)
    assert len(_notes(mido.MidiFile(recorder.path).tracks[0])) == 2  # written without close


def test_close_twice_is_safe_and_later_messages_are_ignored(tmp_path: Path) -> None:
    recorder = SessionRecorder(tmp_path, name="s.mid")
    recorder.record(PLAYER, mido.Message("note_on", note=60, velocity=80), 0)
    recorder.close()
    recorder.record(PLAYER, mido.Message("note_on", note=61, velocity=80), 10)
    recorder.close()
    assert len(_notes(mido.MidiFile(recorder.path).tracks[0])) == 1


def test_an_empty_session_still_gives_a_valid_file(tmp_path: Path) -> None:
    midi = mido.MidiFile(SessionRecorder(tmp_path / "new").close())
    assert len(midi.tracks) == 2
