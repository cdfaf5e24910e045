"""Simulated time: phrase building, deterministic runs, ordered output, generate_tokens."""

from __future__ import annotations

from pathlib import Path

import mido

from mididuet.daemon.engine.engine import Engine
from mididuet.daemon.engine.settings import EngineSettings
from mididuet.daemon.engine.simulate import SimulatedClock, generate_tokens, phrase, run_simulation
from mididuet.daemon.live.record import Recording, SessionRecorder
from mididuet.daemon.music.units import NS_PER_MS as MS
from mididuet.daemon.music.units import NS_PER_S as SECOND
from mididuet.daemon.predict.bundle import ModelRunner
from tests.helpers.jack import hanging


def test_phrase_builds_sorted_note_events_with_chords() -> None:
    events = phrase([(0, 60), (250, [64, 67])], duration_ms=250, velocity=70, channel=2, start_ms=1000)
    described = [(t // MS, m.type, m.note) for t, m in events]
    assert described == [
        (1000, "note_on", 60),
        (1250, "note_off", 60),  # the note-off sorts before a note-on at the same instant
        (1250, "note_on", 64),
        (1250, "note_on", 67),
        (1500, "note_off", 64),
        (1500, "note_off", 67),
    ]
    assert {m.channel for _, m in events} == {2}
    assert {m.velocity for _, m in events if m.type == "note_on"} == {70}


def _run(model: ModelRunner, seed: int) -> list[tuple[int, bytes]]:
    settings = EngineSettings(seed=seed, answer_tokens=12)
    events = phrase([(0, 60), (300, 64), (600, 67)])
    out = run_simulation(lambda send, now: Engine(model, settings, send, now), events, 10 * SECOND)
    return [(t, bytes(m.bytes())) for t, m in out]


def test_runs_are_deterministic_and_ordered(model: ModelRunner) -> None:
    first = _run(model, 11)
    assert first == _run(model, 11)
    times = [t for t, _ in first]
    assert times == sorted(times)
    assert len({t for t, b in first if b[0] & 0xF0 == 0x90}) == 12  # 12 tokens, chords share an onset


def test_a_built_engine_and_a_start_time(model: ModelRunner) -> None:
    clock = SimulatedClock(start_ns=5 * SECOND)
    sent: list[tuple[int, mido.Message]] = []
    engine = Engine(model, EngineSettings(mode="solo", bpm=60), lambda m: sent.append((clock.now_ns, m)),
                    clock.now_ns)
    assert run_simulation(engine, [], 7 * SECOND, clock=clock) == []  # output went to our own send
    # One token per second from the start time; a chord token's notes share their onset.
    assert sorted({t for t, m in sent if m.type == "note_on"})[:3] == [5 * SECOND, 6 * SECOND, 7 * SECOND]
    assert not hanging(sent)  # release_all at the end


def test_generate_tokens_is_seeded(model: ModelRunner) -> None:
    a = generate_tokens(model, 50, EngineSettings(seed=1))
    assert len(a) == 50
    assert a == generate_tokens(model, 50, EngineSettings(seed=1))
    assert a != generate_tokens(model, 50, EngineSettings(seed=2))
    assert set(a) <= set(model.vocabulary)


def test_a_recorded_simulation_holds_both_sides(model: ModelRunner, tmp_path: Path) -> None:
    recorder = SessionRecorder(tmp_path, name="session.mid")
    settings = EngineSettings(seed=3)
    events = phrase([(0, 60), (400, 62), (800, 64)])
    out = run_simulation(lambda send, now: Engine(model, settings, send, now, observers=[Recording(recorder)]),
                         events, 5 * SECOND)
    recorder.close()
    midi = mido.MidiFile(recorder.path)
    player = [m for m in midi.tracks[0] if m.type == "note_on"]
    answer = [m for m in midi.tracks[1] if m.type == "note_on" and m.velocity > 0]
    assert [m.note for m in player] == [60, 62, 64]
    assert len(answer) == sum(1 for _, m in out if m.type == "note_on" and m.velocity > 0) > 0
    # The answer starts 600 ms after the last release (1.1 s): 1.7 s at 120 BPM, 960 ticks/beat.
    tick = 0
    for msg in midi.tracks[1]:
        tick += msg.time
        if msg.type == "note_on":
            break
    assert tick == round(1.7 * 2 * 960)
