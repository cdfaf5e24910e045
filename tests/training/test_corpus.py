"""Reading a corpus: every MIDI file below a directory, bad ones skipped by name, cached."""

import os

import pytest

from mididuet.training.corpus import CorpusError, read_corpus
from tests.helpers.midi_files import scale_piece, write_midi


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
    cached[0].write_text('[["C4", 0.0, 1.0, 80, 60, 60, 1, 0.0]]')
    assert read_corpus(corpus).pieces[0].tokens == ("C4",)
    path.write_bytes(path.read_bytes() + b"\0")  # new content, new hash: read again
    assert read_corpus(corpus).pieces[0].tokens == first.pieces[0].tokens
