"""`mididuet generate` and `mididuet demo` on the shipped model: files you can open, hear and see."""

from __future__ import annotations

import shutil
import struct
import wave
from pathlib import Path

import mido
import numpy as np
import pytest

from mididuet.daemon.cli import main
from mididuet.daemon.offline.demo import demo_phrase
from mididuet.daemon.offline.render import find_soundfont
from mididuet.daemon.predict.bundle import load_bundle
from tests.helpers.midi_files import write_midi


def notes_of(track: mido.MidiTrack) -> list[tuple[float, float, int]]:
    """(start, end, pitch) in ticks, for one track; fails if a note never ends."""
    now, sounding, notes = 0, {}, []
    for msg in track:
        now += msg.time
        if msg.type == "note_on" and msg.velocity > 0:
            sounding[msg.note] = now
        elif msg.type in ("note_on", "note_off") and msg.note in sounding:
            notes.append((sounding.pop(msg.note), now, msg.note))
    assert not sounding, f"notes never ended: {sounding}"
    return notes


def test_generate_answers_a_primer_after_it_in_time(tmp_path, capsys):
    primer = write_midi(tmp_path / "primer.mid", [[(0, 1, 60, 0), (1, 1, 63, 0), (2, 1, 67, 0),
                                                    (3, 2, 48, 0), (3, 2, 55, 0), (3, 2, 63, 0)]])
    out = tmp_path / "answer.mid"
    assert main(["generate", "--primer", str(primer), "--tokens", "24", "--seed", "3", "--out", str(out)]) == 0
    assert "24 tokens" in capsys.readouterr().out
    midi = mido.MidiFile(out)
    assert len(midi.tracks) == 2
    call, answer = notes_of(midi.tracks[0]), notes_of(midi.tracks[1])
    assert len(call) == 6 and len(answer) >= 24
    assert min(start for start, _, _ in answer) > max(end for _, end, _ in call)
    assert all(end > start for start, end, _ in answer)
    assert all(21 <= pitch <= 108 for _, _, pitch in answer)


def test_generate_without_primer_plays_solo_at_the_bpm(tmp_path):
    out = tmp_path / "solo.mid"
    assert main(["generate", "--tokens", "16", "--bpm", "100", "--seed", "1", "--rhythm", "pulse",
                 "--out", str(out)]) == 0
    answer = notes_of(mido.MidiFile(out).tracks[1])
    onsets = sorted({start for start, _, _ in answer})
    assert len(onsets) == 16
    beat_ticks = np.diff(onsets)
    # one token per beat at 100 BPM = 0.6 s = 1152 ticks at the file's 120 BPM, 960 per beat
    assert np.allclose(beat_ticks, 1152, atol=2)


def test_generate_expressive_plays_the_predicted_intervals_in_beats_of_the_bpm(tmp_path):
    """Every interval is a grid value times the beat. A solo from nothing can settle into
    one interval for a whole run (some seeds do: docs/model-quality.md), so the rhythm's
    variety is asked of three seeds together and of most of them alone."""
    encoding = load_bundle().info.expression
    assert encoding is not None
    steps = {round(d * t * 1152) for d in encoding.delay for t in encoding.timing}  # × the 1152-tick beat
    varied = []
    for seed in (1, 2, 3):
        out = tmp_path / f"solo{seed}.mid"
        assert main(["generate", "--tokens", "24", "--bpm", "100", "--seed", str(seed), "--out", str(out)]) == 0
        onsets = sorted({start for start, _, _ in notes_of(mido.MidiFile(out).tracks[1])})
        intervals = np.diff(onsets)
        assert all(min(abs(i - s) for s in steps) <= 2 for i in intervals), intervals
        varied.append(len(set(intervals.tolist())))
    assert sum(distinct >= 3 for distinct in varied) >= 2, f"the rhythm varies: distinct intervals {varied}"


def test_generate_with_the_same_seed_is_repeatable_and_greedy_is_deterministic(tmp_path):
    runs = []
    for i, extra in enumerate((["--seed", "9"], ["--seed", "9"], ["--sampling", "greedy"], ["--sampling", "greedy"])):
        out = tmp_path / f"{i}.mid"
        assert main(["generate", "--tokens", "20", "--out", str(out), *extra]) == 0
        runs.append([(m.type, getattr(m, "note", None)) for m in mido.MidiFile(out).tracks[1]])
    assert runs[0] == runs[1]
    assert runs[2] == runs[3]


def test_generate_refuses_bad_input_with_exit_2(tmp_path, capsys):
    (tmp_path / "bad.mid").write_text("not midi")
    assert main(["generate", "--primer", str(tmp_path / "bad.mid"), "--out", str(tmp_path / "a.mid")]) == 2
    assert "primer bad.mid: not a readable MIDI file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "--tokens", "0", "--out", str(tmp_path / "a.mid")])
    assert exit_info.value.code == 2
    (tmp_path / "model.onnx").write_text("not a model")
    assert main(["generate", "--model", str(tmp_path / "model.onnx"), "--out", str(tmp_path / "a.mid")]) == 2
    assert "not a readable ONNX model" in capsys.readouterr().err


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    return struct.unpack(">II", data[16:24])


def pitch_energy(path: Path) -> np.ndarray:
    """Spectral energy per MIDI pitch (nearest semitone) of a WAV file."""
    with wave.open(str(path)) as w:
        frames = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        samples = frames.reshape(-1, w.getnchannels()).mean(axis=1)
        rate = w.getframerate()
    spectrum = np.abs(np.fft.rfft(samples)) ** 2
    freqs = np.fft.rfftfreq(len(samples), 1 / rate)
    keep = (freqs > 25) & (freqs < 4200)  # A0 to C8
    pitches = np.round(69 + 12 * np.log2(freqs[keep] / 440)).astype(int)
    return np.bincount(pitches, weights=spectrum[keep], minlength=128)


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--out-dir", str(out)]) == 0
    return out


def test_demo_writes_the_phrase_and_the_answer_on_two_tracks(demo_dir):
    midi = mido.MidiFile(demo_dir / "duet.mid")
    call, answer = notes_of(midi.tracks[0]), notes_of(midi.tracks[1])
    phrase_notes = sum(1 for _, m in demo_phrase() if m.type == "note_on")
    assert len(call) == phrase_notes
    assert answer and min(s for s, _, _ in answer) > max(e for _, e, _ in call)
    assert all(21 <= p <= 108 and e > s for s, e, p in answer)


def test_demo_draws_a_piano_roll(demo_dir):
    assert png_size(demo_dir / "duet.png") == (1200, 500)


def test_the_demo_s_answer_breathes_and_its_roll_shows_it(demo_dir):
    """The shipped model's answer: varied intervals, lengths and velocities, and the roll
    draws each note as long as it sounds and as dark as it is loud."""
    from mididuet.daemon.offline.pianoroll import notes_from_events

    events, now = [], 0
    for msg in mido.MidiFile(demo_dir / "duet.mid").tracks[1]:
        now += msg.time
        events.append((now, msg))
    notes = notes_from_events(events)
    onsets = sorted({n.start_s for n in notes})
    assert len(set(np.diff(onsets).tolist())) >= 3, "intervals"
    assert len({n.end_s - n.start_s for n in notes}) >= 3, "lengths"
    assert len({n.velocity for n in notes}) >= 3, "velocities"


@pytest.mark.skipif(shutil.which("fluidsynth") is None or find_soundfont() is None,
                    reason="FluidSynth or a GM soundfont is not installed (CI installs both)")
def test_demo_wav_sounds_the_notes_that_were_played(demo_dir):
    energy = pitch_energy(demo_dir / "duet.wav")
    assert energy.sum() > 0, "the WAV is silent"
    midi = mido.MidiFile(demo_dir / "duet.mid")
    played = sorted({m.note for t in midi.tracks for m in t if m.type == "note_on" and m.velocity > 0})
    loudest = list(np.argsort(energy)[::-1][:5])
    assert loudest[0] in played
    assert sum(p in played for p in loudest) >= 4, (loudest, played)
    # Random sets of this many pitches hold ~43% of the energy (max 61% in 200 draws).
    assert energy[played].sum() / energy.sum() > 0.6


def test_demo_without_a_soundfont_still_writes_midi_and_png(tmp_path, monkeypatch, capsys):
    # CI installs a soundfont; hiding the places it is looked for is the only way to take
    # the path of a user who has none.
    monkeypatch.setattr("mididuet.daemon.offline.render.SOUNDFONT_PLACES", ())
    monkeypatch.delenv("MIDIDUET_SOUNDFONT", raising=False)
    assert main(["demo", "--out-dir", str(tmp_path)]) == 0
    assert (tmp_path / "duet.mid").is_file() and (tmp_path / "duet.png").is_file()
    assert not (tmp_path / "duet.wav").exists()
    assert "apt install fluidsynth" in capsys.readouterr().err


def test_demo_answers_a_users_primer(tmp_path):
    primer = write_midi(tmp_path / "mine.mid", [[(i * 0.5, 0.5, 60 + i, 0) for i in range(8)]])
    assert main(["demo", "--primer", str(primer), "--out-dir", str(tmp_path / "out"), "--tokens", "5"]) == 0
    answer = notes_of(mido.MidiFile(tmp_path / "out" / "duet.mid").tracks[1])
    assert len({s for s, _, _ in answer}) == 5


def test_unwritable_outputs_are_one_line_errors(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["generate", "--tokens", "4", "--out", str(blocker / "answer.mid")]) == 2
    assert main(["demo", "--out-dir", str(blocker / "demo")]) == 2
    err = capsys.readouterr().err
    assert err.count("mididuet: error: cannot write") == 2 and "Traceback" not in err


def test_a_slow_bpm_still_gets_the_whole_answer():
    from mididuet.daemon.engine.settings import EngineSettings
    from mididuet.daemon.offline.generate import perform
    from mididuet.daemon.predict.bundle import load_bundle

    performance = perform(load_bundle(), EngineSettings(bpm=20, seed=1), demo_phrase(), 40)
    assert len(performance.tokens) == 40  # the simulation once stopped at the 40 BPM horizon


def test_a_named_soundfont_that_is_missing_is_said_not_swapped(tmp_path, capsys):
    assert main(["demo", "--out-dir", str(tmp_path), "--soundfont", str(tmp_path / "nope.sf2")]) == 0
    assert not (tmp_path / "duet.wav").exists()
    assert "--soundfont" in capsys.readouterr().err and (tmp_path / "duet.mid").is_file()
