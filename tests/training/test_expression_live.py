"""The daemon sees a player's tokens as the trainer saw the corpus: the same features.

A MIDI file with chords, rests, triplets, the pedal and changing dynamics is read by the
trainer (records → features) and played, message by message in its own time, into a
real engine (muted: it only listens) over a format-2 bundle of the file's own tokens.
The window's features must be the trainer's, token for token (the loud and known ones too).
"""

from __future__ import annotations

import mido
import numpy as np

from mididuet.daemon.engine.engine import Engine
from mididuet.daemon.engine.settings import EngineSettings
from mididuet.daemon.music.expression import DEFAULT
from mididuet.daemon.music.midi_reader import read_records
from mididuet.daemon.music.units import NS_PER_S
from mididuet.daemon.predict.bundle import ModelRunner
from mididuet.training.expression import encode_records
from tests.helpers.bundles import make_bundle

TICKS = 480


def piece(path):
    """Two hands, a pedalled bass under a melody, at 100 BPM, with a crescendo."""
    events = [(0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(100)))]
    melody = [(0, 1, 72), (1, 0.5, 74), (1.5, 0.5, 76), (2, 1 / 3, 77), (2 + 1 / 3, 1 / 3, 76), (2 + 2 / 3, 1 / 3, 74),
              (3, 1.5, 72), (4.5, 0.5, 71), (5, 1, 69), (7, 1, 67), (8, 0.75, 69), (8.75, 0.25, 71), (9, 2, 72)]
    # A run after it, so the level slides over more than the 16 velocities it is the median of.
    melody += [(11 + k / 4, 0.25, pitch) for k, pitch in enumerate((74, 76, 77, 79, 81, 79, 77, 76, 74, 72, 71, 72))]
    for i, (beat, length, pitch) in enumerate(melody):
        velocity = 40 + 3 * i + 7 * (i % 3 == 0)  # a crescendo, every third note accented
        events += [(round(beat * TICKS), mido.Message("note_on", note=pitch, velocity=velocity)),
                   (round((beat + length) * TICKS), mido.Message("note_off", note=pitch))]
    for beat in (0, 3, 5, 9):  # a chord under the pedal, released at once, sounding on
        for pitch in (48, 55, 64):
            events += [(round(beat * TICKS), mido.Message("note_on", note=pitch, velocity=60)),
                       (round((beat + 0.25) * TICKS), mido.Message("note_off", note=pitch))]
        events += [(round(beat * TICKS) - 1 if beat else 0, mido.Message("control_change", control=64, value=0)),
                   (round(beat * TICKS) + 1, mido.Message("control_change", control=64, value=127))]
    events.append((14 * TICKS, mido.Message("control_change", control=64, value=0)))
    events.sort(key=lambda e: (e[0], e[1].type == "note_on"))
    track, now = mido.MidiTrack(), 0
    for tick, msg in events:
        track.append(msg.copy(time=tick - now))
        now = tick
    mid = mido.MidiFile(ticks_per_beat=TICKS)
    mid.tracks.append(track)
    mid.save(path)
    return path


def test_the_window_computes_the_features_the_trainer_derived(tmp_path) -> None:
    path = piece(tmp_path / "p.mid")
    records = read_records(path)
    vocabulary = sorted({r.token for r in records})
    trained = encode_records(records, {t: i for i, t in enumerate(vocabulary)})
    model = ModelRunner(make_bundle(tmp_path / "m.onnx", vocabulary, expressive=True))
    engine = Engine(model, EngineSettings(chord_window_ms=5), lambda m: None, 0)
    engine.mute = True  # it only listens
    t = 0.0
    for msg in mido.MidiFile(path):
        t += msg.time
        if not msg.is_meta:
            engine.feed(msg, int(t * NS_PER_S))
            engine.tick(int(t * NS_PER_S))
    engine.tick(int((t + 1) * NS_PER_S))
    n = len(records)
    assert 16 + 4 < n <= 32, n  # past the level's 16-velocity history, inside the window
    live = engine.window.features[-n:]
    assert list(engine.window.ids[-n:]) == list(trained.ids)
    assert np.array_equal(live, trained.features), f"live:\n{live}\ntrained:\n{trained.features}"
    first = len(DEFAULT.trunk_features)
    loud = live[:, first:first + DEFAULT.loud_count]
    assert len(np.unique(loud)) > 5, "the crescendo's loudness, token by token"
    known = live[:, first + DEFAULT.loud_count:]
    assert known.shape[1] == DEFAULT.known_count
    grid = len(DEFAULT.length)
    ended, sounding = known[(known >= 1) & (known <= grid)], known[known > grid]
    assert len(np.unique(ended)) >= 3 and len(np.unique(sounding)) >= 3, \
        "the melody's stopped lengths and the pedalled bass's ages, each on several steps of the grid"
