"""A key and the sustain pedal held for minutes, in simulated time through the real engine.

Duet: no answer while anything is held (the phrase has not ended), the answer right after.
Jam: it keeps playing the whole time under a held key, each of its notes ended, and the
ledger's queue of scheduled note-offs stays bounded. With ``thru`` the held key's note
sounds exactly as long as the key is down. Nothing hangs after the stop.
"""

from __future__ import annotations

from pathlib import Path

import mido
import pytest

from mididuet.daemon.engine.engine import Engine
from mididuet.daemon.engine.settings import EngineSettings
from mididuet.daemon.engine.simulate import phrase, run_simulation
from mididuet.daemon.music.units import NS_PER_S as SECOND
from mididuet.daemon.predict.bundle import ModelRunner
from tests.helpers.bundles import make_bundle
from tests.helpers.jack import hanging

MINUTES = 5 * 60 * SECOND
MS = 1_000_000
HELD = 30


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> ModelRunner:
    return ModelRunner(make_bundle(tmp_path_factory.mktemp("m") / "tiny.onnx", seed=3))


def _answer_onsets(output: list[tuple[int, mido.Message]], thru: set[int]) -> list[int]:
    return [t for t, m in output if m.type == "note_on" and m.velocity > 0 and m.note not in thru]


def test_pedal_held_for_minutes_delays_the_duet_answer_until_it_is_released(model: ModelRunner) -> None:
    settings = EngineSettings(seed=1, phrase_gap_ms=300, bpm=240, answer_tokens=4)
    release = 100 + MINUTES // MS  # ms
    events = [(0, mido.Message("control_change", control=64, value=127)),
              *phrase([(10, 60), (300, 62), (600, 64)], duration_ms=200),
              (release * MS, mido.Message("control_change", control=64, value=0))]
    events.sort(key=lambda e: e[0])
    output = run_simulation(lambda send, now: Engine(model, settings, send, now), events, MINUTES + 10 * SECOND)
    onsets = _answer_onsets(output, set())
    assert onsets, "an answer after the pedal comes up"
    assert min(onsets) >= release * MS + 300 * MS, "no answer while the pedal is down"
    assert len({t for t in onsets}) == 4
    assert not hanging(output)


def test_key_held_for_minutes_in_jam_with_thru(model: ModelRunner) -> None:
    settings = EngineSettings(seed=2, mode="jam", bpm=120, thru=True)
    held_until = MINUTES
    # A low F#1, which the answers never play: an answer note on the held key's own pitch
    # and channel re-strikes it and its scheduled note-off ends it (one note per key and
    # channel on any synth), measured with C3 = 48 at 273.5 s. Thru on its own channel avoids that.
    events = [(0, mido.Message("note_on", note=HELD, velocity=90)),
              *phrase([(100, 60), (600, 62)], duration_ms=300),
              (held_until, mido.Message("note_off", note=HELD))]
    events.sort(key=lambda e: e[0])
    engine_box: list[Engine] = []
    longest_queue = 0

    def build(send, now: int) -> Engine:
        def watched(msg: mido.Message) -> None:
            nonlocal longest_queue
            send(msg)
            if engine_box:
                longest_queue = max(longest_queue, len(engine_box[0].ledger._offs))
        engine_box.append(Engine(model, settings, watched, now))
        return engine_box[0]

    output = run_simulation(build, events, held_until + 20 * SECOND)
    answers = [t for t, m in output if m.type == "note_on" and m.velocity > 0 and t > 1 * SECOND]
    # One token per beat (0.5 s) for the whole five minutes under the held key.
    assert len({t for t in answers if t < held_until}) >= 0.95 * (held_until / (SECOND // 2))
    offs = [t for t, m in output if m.type in ("note_on", "note_off") and m.note == HELD
            and (m.type == "note_off" or m.velocity == 0)]
    assert offs and offs[0] >= held_until, "the held key's thru note sounds until the key comes up"
    assert longest_queue <= 8, "scheduled note-offs do not pile up"
    assert not hanging(output) and len(engine_box[0].ledger) == 0


def test_a_key_whose_note_off_never_comes_is_cleared_by_panic(model: ModelRunner, tmp_path: Path) -> None:
    """A note-off lost on the way (a cable, a dropped event) would hold the duet forever:
    the panic control forgets the held keys, and the next phrase is answered."""
    settings = EngineSettings(seed=3, phrase_gap_ms=300, bpm=240, answer_tokens=2, thru=True)
    events = [(0, mido.Message("note_on", note=55, velocity=80)),  # never released
              *phrase([(100, 60), (400, 62)], duration_ms=200),
              (MINUTES, mido.Message("control_change", control=settings.cc_panic, value=127)),
              *phrase([(0, 64), (300, 65)], duration_ms=200, start_ms=MINUTES / MS + 1000)]
    events.sort(key=lambda e: e[0])
    output = run_simulation(lambda send, now: Engine(model, settings, send, now), events, MINUTES + 10 * SECOND)
    onsets = _answer_onsets(output, {55, 60, 62, 64, 65})
    # Panic forgets the key: the call played before it is answered at once, the next one too.
    assert onsets and min(onsets) >= MINUTES, "no answer while the key is (believed) held; one after panic"
    assert not hanging(output)
