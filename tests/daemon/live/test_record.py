"""SessionRecorder: two tracks with a tempo, times kept, complete files on close and in idle time."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import mido
import pytest

from mididuet.daemon.live.record import MIDIDUET, NS_PER_TICK, PLAYER, TICKS_PER_BEAT, WRITE_EVERY_NS, SessionRecorder

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


def test_the_file_is_rewritten_in_idle_time_not_while_recording(tmp_path: Path) -> None:
    recorder = SessionRecorder(tmp_path, name="s.mid")
    recorder.record(PLAYER, mido.Message("note_on", note=60, velocity=80), 0)
    recorder.record(PLAYER, mido.Message("note_off", note=60), WRITE_EVERY_NS)
    assert not recorder.path.exists(), "record() is on the send path: it never writes"
    assert not recorder.write_if_due(WRITE_EVERY_NS - 1)
    assert recorder.write_if_due(WRITE_EVERY_NS)
    assert len(_notes(mido.MidiFile(recorder.path).tracks[0])) == 2  # written without close
    assert not recorder.write_if_due(3 * WRITE_EVERY_NS), "nothing new since: no rewrite"
    recorder.record(MIDIDUET, mido.Message("note_on", note=64, velocity=70), 3 * WRITE_EVERY_NS)
    assert recorder.write_if_due(3 * WRITE_EVERY_NS)
    assert len(_notes(mido.MidiFile(recorder.path).tracks[1])) == 1


def test_every_recorded_message_reads_back_as_recorded(tmp_path: Path) -> None:
    """The hand-made encoder against mido's reader: all recorded types, long deltas,
    running-status-free bytes, an out-of-order stamp clamped to the previous tick."""
    recorder = SessionRecorder(tmp_path, name="s.mid")
    sent = [mido.Message("note_on", note=0, velocity=127, channel=15),
            mido.Message("note_on", note=127, velocity=0),
            mido.Message("note_off", note=5, velocity=64, channel=3),
            mido.Message("control_change", control=64, value=127),
            mido.Message("pitchwheel", pitch=-8192), mido.Message("pitchwheel", pitch=8191),
            mido.Message("aftertouch", value=9), mido.Message("polytouch", note=60, value=3),
            mido.Message("program_change", program=42)]
    # Gaps from 0 to minutes: one-, two- and four-byte delta times.
    times = [0, 1 * MS, 70 * MS, 9_000 * MS, 9_000 * MS, 600_000 * MS, 600_001 * MS, 600_002 * MS,
             600_000 * MS]
    for msg, t in zip(sent, times, strict=True):
        recorder.record(PLAYER, msg, t)
    track = mido.MidiFile(recorder.close()).tracks[0]
    got = [m for m in track if not m.is_meta]
    assert [m.copy(time=0) for m in got] == sent
    ticks = list(itertools.accumulate(m.time for m in got))
    assert ticks[:3] == [0, round(MS / NS_PER_TICK), round(70 * MS / NS_PER_TICK)]
    assert ticks[5] == round(600_000 * MS / NS_PER_TICK)
    assert ticks[-1] == ticks[-2], "a stamp earlier than the previous one is written at its tick"


def test_memory_is_the_encoded_size_and_a_rewrite_stays_cheap(tmp_path: Path) -> None:
    """An hour of a 2,000 message/s flood in pitch bend (7.2 M messages) would cost ~2 GB as
    message objects; encoded it is ~4 bytes each. 100,000 messages here, and the rewrite
    (which used to re-encode everything with mido: ~9 s) is a header and two buffers."""
    recorder = SessionRecorder(tmp_path, name="s.mid")
    bend = mido.Message("pitchwheel", pitch=100)
    for i in range(100_000):
        recorder.record(PLAYER, bend, i * MS // 2)
    assert recorder.size == 100_000 * 4, "3 bytes of message and 1 of delta each"
    started = time.perf_counter()
    recorder.write()
    elapsed = time.perf_counter() - started
    assert elapsed < 0.1, f"a 400 kB rewrite took {elapsed * 1000:.1f} ms"
    assert len(mido.MidiFile(recorder.path).tracks[0]) == 100_000 + 3  # name, tempo, end


def test_a_failed_write_raises_oserror_and_recording_goes_on(tmp_path: Path) -> None:
    recorder = SessionRecorder(tmp_path, name="s.mid")
    recorder.record(PLAYER, mido.Message("note_on", note=60, velocity=80), 0)
    (tmp_path / "s.mid.tmp").mkdir()  # a real fault: the temporary file cannot be created
    recorder.record(PLAYER, mido.Message("note_off", note=60), WRITE_EVERY_NS)
    with pytest.raises(OSError):
        recorder.write_if_due(WRITE_EVERY_NS)
    assert not recorder.write_if_due(WRITE_EVERY_NS + 1), "no retry in a tight loop"
    (tmp_path / "s.mid.tmp").rmdir()
    recorder.record(PLAYER, mido.Message("note_on", note=62, velocity=80), 2 * WRITE_EVERY_NS)
    assert recorder.write_if_due(2 * WRITE_EVERY_NS)
    assert len(_notes(mido.MidiFile(recorder.path).tracks[0])) == 3


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
