"""The mido reader and corpus reading, on MIDI files the tests write."""

import os

import pytest

from mididuet.daemon.music.midi_reader import MidiReadError, quantise_onset, read_notes, read_tokens
from mididuet.training.corpus import CorpusError, read_corpus
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


def test_corpus_skips_bad_files_by_name_and_counts_them(tmp_path):
    corpus = tmp_path / "corpus"
    scale_piece(corpus / "one.mid")
    scale_piece(corpus / "sub" / "two.mid", offset=3)
    (corpus / "empty.mid").write_bytes(b"")
    (corpus / "text.mid").write_text("this is not MIDI")
    write_midi(corpus / "drums.mid", [[(0, 1, 36, 9)]])
    (corpus / "truncated.mid").write_bytes((corpus / "one.mid").read_bytes()[:50])
    warnings: list[str] = []
    result = read_corpus(corpus, use_cache=False, warn=warnings.append)
    assert sorted(p.name for p in result.pieces) == ["one.mid", os.path.join("sub", "two.mid")]
    assert sorted(name for name, _ in result.skipped) == ["drums.mid", "empty.mid", "text.mid", "truncated.mid"]
    assert dict(result.skipped)["drums.mid"] == "no notes"
    assert warnings[-1] == "skipped 4 of 6 files"


def test_missing_or_empty_corpus_is_an_error(tmp_path):
    with pytest.raises(CorpusError, match="not found"):
        read_corpus(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match=r"no MIDI files"):
        read_corpus(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.mid").write_text("nope")
    with pytest.raises(CorpusError, match="no usable MIDI file"):
        read_corpus(tmp_path / "bad", use_cache=False, warn=lambda _m: None)


def test_second_read_comes_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    corpus = tmp_path / "corpus"
    path = scale_piece(corpus / "one.mid")
    first = read_corpus(corpus)
    cached = list((tmp_path / "cache").rglob("*.json"))
    assert len(cached) == 1
    # Prove the second read uses the cache: make the file unparsable without changing
    # its hash is impossible, so poison the cache entry and see it come back.
    cached[0].write_text('["C4"]')
    assert read_corpus(corpus).pieces[0].tokens == ("C4",)
    path.write_bytes(path.read_bytes() + b"\0")  # new content, new hash: read again
    assert read_corpus(corpus).pieces[0].tokens == first.pieces[0].tokens
