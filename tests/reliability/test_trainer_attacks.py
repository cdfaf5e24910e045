"""Attack the trainer with a corpus the world could hand it: it trains on what is good.

The corpus mixes real Chopin pieces (symlinked from ../shared/data, never copied into the
repository) with every kind of bad file the issue lists. ``mididuet-train`` runs as a
real subprocess (real Keras training, real tf2onnx export) and must finish on the good
files, name each bad one, count them, and exit 0; only a corpus with no usable file at
all is exit 2.

"Unreadable permissions": these tests run as root in CI, where ``chmod 000`` does not stop
a read, so that attack cannot be made with permissions here. Three things that root
cannot read either stand in for it: a FIFO named ``fifo.mid`` (no writer: a plain read
blocks forever, the nastiest case), a dangling symlink, and a symlink to itself (ELOOP).
When the suite runs as a normal user a ``chmod 000`` file is added as well.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mido
import pytest

from mididuet.daemon.music.midi_reader import MidiReadError, read_notes, read_tokens
from mididuet.daemon.predict import bundle
from mididuet.training.corpus import read_corpus
from tests.helpers.midi_files import write_midi

CHOPIN = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "piano-midi" / "midis" / "Chopin"
GOOD_CHOPIN = ("chpn-p9.mid", "chpn-p10.mid", "chpn-p11.mid", "chpn-p20.mid")
MAX_DELTA = 0x0FFFFFFF  # the largest delta time a MIDI variable-length quantity can hold
TRAIN_TIMEOUT_S = 300  # a hang (the FIFO) must fail the test, not stall the suite


def _chopin(name: str) -> Path:
    path = CHOPIN / name
    if not path.is_file():
        pytest.fail(f"the Chopin corpus is missing at {CHOPIN}; tests need ../shared/data")
    return path.resolve()


def _zero_division_file(path: Path) -> Path:
    """A header whose division (ticks per beat) is 0, then one valid track with a note."""
    track = bytes([0x00, 0x90, 60, 80, 0x60, 0x80, 60, 0, 0x00, 0xFF, 0x2F, 0x00])
    data = b"MThd" + (6).to_bytes(4, "big") + (0).to_bytes(2, "big") + (1).to_bytes(2, "big") + (0).to_bytes(2, "big")
    path.write_bytes(data + b"MTrk" + len(track).to_bytes(4, "big") + track)
    return path


def _huge_delta_file(path: Path) -> Path:
    """A valid piece whose second half comes after the largest possible delta time."""
    track = mido.MidiTrack()
    for i, pitch in enumerate([60, 62, 64, 65, 67, 69, 71, 72] * 6):
        track.append(mido.Message("note_on", note=pitch, velocity=80, time=MAX_DELTA if i == 24 else 0))
        track.append(mido.Message("note_off", note=pitch, velocity=0, time=240))
    mid = mido.MidiFile(type=0, ticks_per_beat=480)
    mid.tracks.append(track)
    mid.save(path)
    return path


def build_attack_corpus(root: Path) -> tuple[list[str], list[str]]:
    """Write the attack corpus; returns (names that must be read, names that must be skipped)."""
    root.mkdir(parents=True)
    good = []
    for name in GOOD_CHOPIN:
        (root / name).symlink_to(_chopin(name))
        good.append(name)
    # Type 2: independent sequences, each read on its own; a valid file with notes.
    write_midi(root / "type2.mid", [[(i, 1, 60 + i % 12, 0) for i in range(40)],
                                    [(i, 1, 48 + i % 7, 1) for i in range(40)]], midi_type=2)
    _huge_delta_file(root / "huge-delta.mid")
    good += ["type2.mid", "huge-delta.mid"]

    bad = {
        "truncated.mid": _chopin(GOOD_CHOPIN[0]).read_bytes()[:300],
        "empty.mid": b"",
        "text.mid": b"this is a shopping list, not MIDI\n",
        # A valid header, then a track whose length and events are noise.
        "garbage-after-header.mid": (b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0MTrk\x00\x00\x10\x00"
                                     + bytes(range(256)) * 4),
    }
    for name, data in bad.items():
        (root / name).write_bytes(data)
    write_midi(root / "drums-only.mid", [[(i * 0.5, 0.25, 36 + i % 4, 9) for i in range(32)]])
    silent = mido.MidiFile(type=1, ticks_per_beat=480)
    silent.tracks.append(mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=400_000),
                                         mido.Message("control_change", control=64, value=127, time=960),
                                         mido.Message("program_change", program=5, time=10)]))
    silent.save(root / "no-notes.mid")
    _zero_division_file(root / "zero-division.mid")
    os.symlink("self-loop.mid", root / "self-loop.mid")  # a symlink to itself: ELOOP
    os.symlink("..", root / "parent-loop")  # a directory loop: must not be walked forever
    os.symlink("nowhere.mid", root / "dangling.mid")
    os.mkfifo(root / "fifo.mid")  # a plain read of it would block forever
    (root / "directory.mid").mkdir()  # a directory named .mid: not a file, not walked as one
    bad_names = [*bad, "drums-only.mid", "no-notes.mid", "zero-division.mid", "self-loop.mid", "dangling.mid",
                 "fifo.mid"]
    if os.geteuid() != 0:
        locked = root / "locked.mid"
        locked.write_bytes(b"MThd")
        locked.chmod(0)
        bad_names.append("locked.mid")
    return good, bad_names


def _train(data: Path, out: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "training.cli", "--data", str(data), "--out", str(out), "--epochs", "1",
         "--min-count", "3", "--val-fraction", "0.35"],
        capture_output=True, text=True, timeout=TRAIN_TIMEOUT_S, cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "XDG_CACHE_HOME": str(cache), "TF_CPP_MIN_LOG_LEVEL": "3"})


def test_the_reader_names_each_bad_file_and_why(tmp_path: Path) -> None:
    good, bad = build_attack_corpus(tmp_path / "corpus")
    warnings: list[str] = []
    corpus = read_corpus(tmp_path / "corpus", use_cache=False, warn=warnings.append)
    assert sorted(p.name for p in corpus.pieces) == sorted(good)
    reasons = dict(corpus.skipped)
    assert sorted(reasons) == sorted(bad)
    assert "FIFO" in reasons["fifo.mid"]
    assert "symbolic links" in reasons["self-loop.mid"]
    assert "No such file" in reasons["dangling.mid"]
    assert reasons["drums-only.mid"] == reasons["no-notes.mid"] == "no notes"
    assert "ticks per beat 0" in reasons["zero-division.mid"]
    # Every reason says something: an exception with no text must not become "()".
    assert all(not reason.endswith("()") for reason in reasons.values()), reasons
    assert warnings[-1] == f"skipped {len(bad)} of {len(good) + len(bad)} files"
    # The directory loop was not followed: each good piece was found exactly once.
    assert len(corpus.pieces) == len(good)


def test_an_empty_file_says_it_ends_too_early(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mid"
    empty.write_bytes(b"")
    with pytest.raises(MidiReadError, match=r"empty\.mid: not a readable MIDI file \(\w.+\)"):
        read_notes(empty)


def test_huge_delta_times_and_type_2_are_read_not_skipped(tmp_path: Path) -> None:
    huge = read_notes(_huge_delta_file(tmp_path / "huge.mid"))
    assert len(huge) == 48
    assert huge[24].start_s > 100_000  # ~2^28 ticks later, at 120 BPM: days, and still one timeline
    type2 = write_midi(tmp_path / "t2.mid", [[(0, 1, 60, 0), (1, 1, 62, 0)], [(0, 1, 72, 0)]], midi_type=2)
    # Two sequences read each on its own, then ordered by onset: C4 and C5 share beat 0.
    assert read_tokens(type2) == ["0", "D4"]


def test_training_completes_on_the_good_files_and_reports_the_bad(tmp_path: Path) -> None:
    good, bad = build_attack_corpus(tmp_path / "corpus")
    out = tmp_path / "model" / "attacked.onnx"
    result = _train(tmp_path / "corpus", out, tmp_path / "cache")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    for name in bad:
        assert f"skipped {name}:" in result.stderr, f"{name} not reported:\n{result.stderr[-3000:]}"
    assert f"skipped {len(bad)} of {len(good) + len(bad)} files" in result.stderr
    runner = bundle.load_bundle(out)  # the daemon accepts what was trained
    assert runner.info.training["skipped_files"] == len(bad)


def test_a_corpus_with_no_usable_file_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # In-process (the CLI's own main): a subprocess would pay TensorFlow's import again.
    # No FIFO here, since a hang would stall the suite; the subprocess test above has one.
    from mididuet.training.cli import main

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = tmp_path / "corpus"
    root.mkdir()
    (root / "empty.mid").write_bytes(b"")
    os.symlink("nowhere.mid", root / "dangling.mid")
    write_midi(root / "drums.mid", [[(0, 1, 36, 9)]])
    code = main(["--data", str(root), "--out", str(tmp_path / "never.onnx"), "--epochs", "1"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "no usable MIDI file" in err and "Traceback" not in err
    assert "skipped 3 of 3 files" in err
    assert not (tmp_path / "never.onnx").exists()
