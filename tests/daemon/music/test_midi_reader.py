"""The mido reader: notes, chords, tempo and bad files, on MIDI files the tests write."""

import pytest

from mididuet.daemon.music.midi_reader import MidiReadError, quantise_onset, read_notes, read_tokens
from tests.helpers.midi_files import scale_piece, write_midi


def test_notes_starting_together_become_one_chord_token(tmp_path):
    path = write_midi(tmp_path / "a.mid", [[(0, 1, 60, 0), (0, 1, 64, 0), (0, 1, 67, 0), (1, 1, 62, 0)]])
    assert read_tokens(path) == ["0.4.7", "D4"]


def test_tracks_merge_in_time_order_and_drums_are_excluded(tmp_path):
    right = [(0, 1, 72, 0), (1, 1, 74, 0), (2.5, 1, 76, 0)]
    left = [(0, 2, 48, 1), (2, 1, 43, 1)]
    drums = [(0.5, 0.25, 36, 9), (1.5, 0.25, 38, 9)]
    path = write_midi(tmp_path / "b.mid", [right, left, drums])
    # beat 0: C5 + C3 (one pitch class) -> "0"; beat 1: D5; beat 2: G2; beat 2.5: E5
    assert read_tokens(path) == ["0", "D5", "G2", "E5"]


def test_overlapping_notes_and_velocity_zero_note_offs(tmp_path):
    path = write_midi(tmp_path / "c.mid", [[(0, 3, 60, 0), (1, 1, 64, 0), (1, 2, 67, 0)]],
                      zero_velocity_offs=True)
    notes = read_notes(path)
    assert [(n.pitch, float(n.start_beats)) for n in notes] == [(60, 0.0), (64, 1.0), (67, 1.0)]
    assert read_tokens(path) == ["C4", "4.7"]
    held = next(n for n in notes if n.pitch == 60)
    assert held.duration_s == pytest.approx(1.5)  # 3 beats at the default 120 BPM


def test_tempo_changes_are_respected_in_seconds(tmp_path):
    path = write_midi(tmp_path / "d.mid", [[(0, 1, 60, 0), (2, 1, 62, 0), (4, 1, 64, 0)]],
                      tempos=[(0, 120), (2, 60)])
    starts = [n.start_s for n in read_notes(path)]
    assert starts == pytest.approx([0.0, 1.0, 3.0])  # 2 beats at 120, then 2 beats at 60


def test_onsets_snap_to_sixteenths_and_triplets():
    assert quantise_onset(0.26) == quantise_onset(0.25)
    assert float(quantise_onset(0.34)) == pytest.approx(1 / 3)
    assert float(quantise_onset(1.01)) == 1.0


def test_truncated_file_is_a_clear_error(tmp_path):
    good = scale_piece(tmp_path / "good.mid")
    broken = tmp_path / "broken.mid"
    broken.write_bytes(good.read_bytes()[:60])
    with pytest.raises(MidiReadError, match=r"broken\.mid"):
        read_notes(broken)
