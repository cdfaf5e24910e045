"""The engine playing an expressive bundle (format 2): when, how long, how loud and where,
in simulated time, against the pulse rhythm of a format-1 bundle or ``rhythm="pulse"``."""

from __future__ import annotations

import itertools
import logging

import mido
import numpy as np
import pytest

from mididuet.daemon.engine.engine import Engine
from mididuet.daemon.engine.settings import EngineSettings
from mididuet.daemon.engine.simulate import phrase, run_simulation
from mididuet.daemon.music.expression import FEATURES
from mididuet.daemon.music.units import NS_PER_MS as MS
from mididuet.daemon.music.units import NS_PER_S as SECOND
from mididuet.daemon.play.pulse import NOTE_LENGTH
from mididuet.daemon.play.rhythm import MAX_NOTE_NS
from mididuet.daemon.predict.bundle import ModelRunner
from tests.helpers.bundles import make_bundle
from tests.helpers.jack import hanging, onset_groups

Timed = list[tuple[int, mido.Message]]
CALL = [(i * 250, 60 + (i * 3) % 12) for i in range(12)]  # 12 notes at 240 BPM


@pytest.fixture(scope="module")
def expressive(tmp_path_factory: pytest.TempPathFactory) -> ModelRunner:
    """A tiny format-2 bundle whose heads are sharp enough to differ from token to token."""
    return ModelRunner(make_bundle(tmp_path_factory.mktemp("m") / "expressive.onnx", expressive=True, seed=3,
                                   sharpness=0.6))


def duet(model: ModelRunner, until_s: float = 40, call: list | None = None, **fields: object) -> Timed:
    settings = EngineSettings(**{"seed": 1, "answer_tokens": 16, **fields})  # type: ignore[arg-type]
    events = phrase(call or CALL, duration_ms=200)
    return run_simulation(lambda send, now: Engine(model, settings, send, now), events, int(until_s * SECOND))


def notes(out: Timed) -> list[tuple[int, int, int, int]]:
    """(onset, end, pitch, velocity) of every note sent."""
    started: dict[int, tuple[int, int]] = {}
    found = []
    for t, msg in out:
        if msg.type == "note_on" and msg.velocity > 0:
            if msg.note in started:
                onset, velocity = started.pop(msg.note)
                found.append((onset, t, msg.note, velocity))
            started[msg.note] = (t, msg.velocity)
        elif msg.type in ("note_on", "note_off") and msg.note in started:
            onset, velocity = started.pop(msg.note)
            found.append((onset, t, msg.note, velocity))
    return sorted(found)


def onsets(out: Timed) -> list[int]:
    return [group[0][0] for group in onset_groups([(t, m) for t, m in out if m.type == "note_on" and m.velocity],
                                                  tolerance_ns=1)]


def test_an_expressive_answer_varies_its_intervals_lengths_and_velocities(expressive: ModelRunner) -> None:
    # Without the memory: a call all at one velocity would rightly teach it one loudness. The
    # random bundle's rests lengthen the pulse they are counted in: give it time to finish.
    out = duet(expressive, memory=0.0, until_s=120)
    played = notes(out)
    starts = onsets(out)
    assert len(starts) == 16
    intervals = np.diff(starts)
    lengths = [end - onset for onset, end, _, _ in played]
    velocities = {v for _, _, _, v in played}
    assert len(set(intervals.tolist())) >= 3, "intervals vary"
    assert len(set(lengths)) >= 3 and max(lengths) <= MAX_NOTE_NS, "lengths vary, within the cap"
    assert len(velocities) >= 3, "dynamics vary"
    assert not hanging(out)


def test_each_interval_is_a_class_of_the_grid_times_the_pulse(expressive: ModelRunner) -> None:
    """Every answer interval is one of the bundle's delay ratios, off the grid by one of its
    timing factors, × a pulse the window held (an IOI that was played, as the low median
    always is)."""
    encoding = expressive.info.expression
    assert encoding is not None
    ratios = [d * t for d in encoding.delay for t in encoding.timing]
    out = duet(expressive)
    starts = onsets(out)
    played_iois = {250 * MS, starts[0] - CALL[-1][0] * MS}  # the call's, and the gap before the answer
    for a, b in itertools.pairwise(starts):
        ioi = b - a
        assert any(abs(ioi - r * p) <= 2 for r in ratios for p in played_iois), (ioi, sorted(played_iois))
        played_iois.add(ioi)


def test_the_pulse_rhythm_is_todays_music_box(expressive: ModelRunner, model: ModelRunner) -> None:
    for out in (duet(expressive, rhythm="pulse"), duet(model)):
        starts = onsets(out)
        assert set(np.diff(starts).tolist()) == {250 * MS}, "one token per pulse"
        played = notes(out)
        assert {end - onset for onset, end, _, _ in played} == {int(250 * MS * NOTE_LENGTH)}
        assert {v for _, _, _, v in played} == {80}, "the player's median velocity"


def test_a_format_1_bundle_says_it_plays_the_pulse(model: ModelRunner, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="mididuet.engine"):
        engine = Engine(model, EngineSettings(), lambda m: None, 0)
    assert not engine.expressive
    assert any("has no expressive heads (bundle format 1): playing the pulse rhythm" in r.message
               for r in caplog.records)


def test_velocity_fixes_the_loudness_even_when_expressive(expressive: ModelRunner) -> None:
    assert {v for _, _, _, v in notes(duet(expressive, velocity=64))} == {64}


def test_a_lower_rhythm_temperature_is_steadier_in_time_and_loudness(expressive: ModelRunner) -> None:
    spreads, loudness = [], []
    for temperature in (0.1, 3.0):
        out = duet(expressive, rhythm_temperature=temperature, answer_tokens=48, until_s=200)
        spreads.append(len(set(np.diff(onsets(out)).tolist())))
        loudness.append(float(np.std([v for *_, v in notes(out)])))
    assert spreads[0] < spreads[1]
    assert loudness[0] < loudness[1]


def test_the_same_seed_plays_the_same_answer(expressive: ModelRunner) -> None:
    assert duet(expressive, seed=4) == duet(expressive, seed=4)
    assert notes(duet(expressive, seed=4)) != notes(duet(expressive, seed=5))


def test_no_onset_is_ever_in_the_past_and_solo_keeps_going(expressive: ModelRunner) -> None:
    sent: list[tuple[int, mido.Message]] = []
    clock = {"now": 0}
    engine = Engine(expressive, EngineSettings(mode="solo", seed=2), lambda m: sent.append((clock["now"], m)), 0)
    now = 0
    for _ in range(400):
        deadline = engine.tick(now)
        assert deadline is not None and deadline > now - 1, "the next deadline is never behind the clock"
        now = max(deadline, now + 1)
        clock["now"] = now
    starts = onsets(sent)
    assert len(starts) > 100 and all(b > a for a, b in itertools.pairwise(starts))
    engine.release_all()
    assert not hanging(sent)


@pytest.mark.parametrize("ioi_ms", [500, 350])
def test_jam_keeps_its_onsets_on_the_players_grid(expressive: ModelRunner, ioi_ms: int) -> None:
    """Every onset, the first too: placed when one onset gave no pulse yet (the default
    500 ms), it moves onto the grid the player's next tokens draw."""
    call = [(i * ioi_ms, 60 + i % 7) for i in range(30_000 // ioi_ms)]  # for 30 s
    events = phrase(call, duration_ms=200)
    settings = EngineSettings(mode="jam", seed=3)
    out = run_simulation(lambda send, now: Engine(expressive, settings, send, now), events, 30 * SECOND)
    player = [onset * MS for onset, _ in call]
    answer = onsets(out)
    assert len(answer) >= 10
    pulse = ioi_ms * MS
    for onset in answer:
        last = max(t for t in player if t <= onset)
        offset = onset - last
        on_grid = any(abs(offset - round(offset / (pulse / d)) * (pulse / d)) <= 1 for d in (4, 3))
        assert on_grid, (onset, last, offset)


@pytest.mark.parametrize("mode", ["duet", "jam", "solo"])
def test_every_mode_releases_every_note(expressive: ModelRunner, mode: str) -> None:
    out = duet(expressive, mode=mode, until_s=6)
    assert not hanging(out)


def test_each_token_carries_the_length_of_the_one_before_as_known_when_it_began(expressive: ModelRunner) -> None:
    """The length feature is the previous token's if it had stopped sounding as this one
    began (once a pulse is known for it: from the third token on, as in training), else
    held; and no feature changes once its token is in the window (the model must not read
    later what was unknown when the next token was decided)."""
    engine = Engine(expressive, EngineSettings(), lambda m: None, 0)
    encoding = engine.encoding
    assert encoding is not None
    length = FEATURES.index("length")
    calls = phrase([(0, 60), (500, 62), (1000, 64), (2000, 67)], duration_ms=250)
    calls += phrase([(1500, 65)], duration_ms=600)  # still down when 67 begins: legato
    for t, msg in sorted(calls, key=lambda e: e[0]):
        engine.feed(msg, t)
        engine.tick(t)
    engine.feed(mido.Message("note_on", note=69, velocity=90), 2500 * MS)
    engine.tick(2600 * MS)
    features = engine.window.features.copy()
    assert list(features[-6:, length]) == [
        0, 0, 0,  # no previous token, then no pulse yet for the first two
        1 + encoding.length_class(250 * MS, 500 * MS),  # 64's quarter-pulse, carried by 65
        encoding.held,  # 65 still sounding as 67 began
        1 + encoding.length_class(250 * MS, 500 * MS),  # 67's, stopped before 69
    ]
    engine.feed(mido.Message("note_off", note=69), 3500 * MS)
    engine.tick(3500 * MS)
    assert np.array_equal(engine.window.features, features), "a released key changes nothing already read"


def stopped_early(played: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """The notes that stop before the next onset after theirs."""
    starts = sorted({onset for onset, *_ in played})
    following = dict(itertools.pairwise(starts))
    return [n for n in played if n[0] in following and n[1] < following[n[0]]]


def test_legato_holds_each_note_until_the_next_one_begins(expressive: ModelRunner) -> None:
    """A length drawn to stop before mididuet's next onset is drawn again from those that
    reach it; --no-legato plays each length as first drawn."""
    free = notes(duet(expressive, legato=False))
    held = notes(duet(expressive))
    assert len(stopped_early(free)) >= 3, "this bundle draws lengths shorter than the interval after them"
    assert not stopped_early(held)
    assert len(held) >= 16 and max(end - onset for onset, end, *_ in held) <= MAX_NOTE_NS


def test_a_duet_answer_s_first_token_reads_no_rhythm_from_the_pause_before_it(expressive: ModelRunner) -> None:
    """The call's pause is the duet's turn-taking, which the corpus never has: the answer's
    first token carries no delay or timing, and the pause stays out of the pulse. The
    tokens after it carry theirs."""
    engine = Engine(expressive, EngineSettings(seed=1, answer_tokens=4), lambda m: None, 0)
    encoding = engine.encoding
    assert encoding is not None
    delay, timing = encoding.features.index("delay"), encoding.features.index("timing")
    for t, msg in phrase(CALL, duration_ms=200):
        engine.feed(msg, t)
        engine.tick(t)
    call_pulse = engine.window.pulse_ns()
    answered: list[np.ndarray] = []  # the answer window's newest features, as each answered token is played
    onsets: list[int] = []
    for t in range(CALL[-1][0] * MS, 10 * SECOND, MS):
        engine.tick(t)
        own = engine._own_onset
        if own is not None and own not in onsets:
            onsets.append(own)
            window = engine._mode.window()
            answered.append(window.features[-1].copy())
            if len(answered) == 1:
                assert window is not engine.window and window.pulse_ns() == call_pulse, "the pause left the pulse"
            else:
                break
    assert len(answered) == 2, "the call was answered"
    assert answered[0][delay] == answered[0][timing] == 0
    assert answered[1][delay] > 0, "the second answered token carries its interval"


@pytest.mark.parametrize("version", [2, 3, 4])
def test_an_earlier_encoding_s_bundle_still_plays_expressively(tmp_path, version: int) -> None:
    """The models shipped before the sounding feature (eight features), before the loud
    ones (nine) and before the known ones (17) read the features they declare and play as
    they did."""
    from mididuet.daemon.music.expression import FEATURES_BY_VERSION, Encoding

    model = ModelRunner(make_bundle(tmp_path / f"v{version}.onnx", expressive=True, seed=3, sharpness=0.6,
                                    encoding=Encoding(features=FEATURES_BY_VERSION[version])))
    assert model.info.expression is not None and model.info.expression.version == version
    assert model.info.expression.known_count == 0 and len(model.features) == {2: 8, 3: 9, 4: 17}[version]
    out = duet(model)
    assert len(set(np.diff(onsets(out)))) >= 3, "its heads decide the intervals"
    assert not hanging(out)


def test_a_late_loop_plays_the_same_tokens_as_a_punctual_one(expressive: ModelRunner) -> None:
    """How late the loop wakes (a busy machine) may move when a note sounds, never which
    tokens play: legato's draw is made whether a note falls short or not. (Late by less
    than the shortest interval: a later one is clamped to the present, which is timing.)"""
    from mididuet.daemon.engine.observe import TokenLog

    def solo(seed: int, lateness_ms: list[float]) -> list[str]:
        log = TokenLog()
        engine = Engine(expressive, EngineSettings(mode="solo", seed=seed, bpm=150.0), lambda m: None, 0,
                        observers=[log])
        now, k = 0, 0
        while len(log.tokens) < 100:
            deadline = engine.tick(now)
            now = max((deadline or now) + int(lateness_ms[k % len(lateness_ms)] * MS), now + 1)
            k += 1
        return log.tokens

    late = list(np.random.default_rng(0).uniform(0, 40, 97))  # the shortest interval: 100 ms
    assert all(solo(seed, [0.0]) == solo(seed, late) for seed in range(1, 11))


def test_after_a_panic_the_keys_it_forgot_no_longer_sound(expressive: ModelRunner) -> None:
    """A panic forgets held keys, whose releases will never be heard: the tokens after it
    must not read them as sounding on and on."""
    engine = Engine(expressive, EngineSettings(chord_window_ms=5), lambda m: None, 0)
    engine.mute = True  # it only listens
    encoding = engine.encoding
    assert encoding is not None
    sounding = encoding.features.index("sounding")
    for t, msg in phrase([(0, 60), (500, 62), (1000, 64)], duration_ms=200):
        engine.feed(msg, t)
        engine.tick(t)
    engine.feed(mido.Message("note_on", note=48, velocity=70), 1500 * MS)  # held through the panic
    engine.tick(1600 * MS)
    engine.feed(mido.Message("control_change", control=engine.settings.cc_panic, value=127), 1700 * MS)
    for t, msg in phrase([(2000, 65)], duration_ms=200):
        engine.feed(msg, t)
        engine.tick(t + 10 * MS)
    assert engine.window.features[-1, sounding] == encoding.nothing_sounding


def test_a_mute_tells_the_window_that_its_notes_stopped(expressive: ModelRunner) -> None:
    """Muted, mididuet's notes end at once; the player's next token must not read them as
    still sounding (as a panic's release already told it)."""
    engine = Engine(expressive, EngineSettings(mode="solo", seed=1, bpm=60.0), lambda m: None, 0)
    encoding = engine.encoding
    assert encoding is not None
    now, until = 0, 10 * SECOND  # two tokens played (a pulse known), the second still sounding
    while (deadline := engine.tick(now)) is not None and deadline <= until:
        now = max(deadline, now + 1)
    engine.tick(until)
    assert len(engine.ledger), "a note of mididuet's sounds as it is muted"
    own = engine._own_note
    assert own is not None and own.onset_ns + own.length_ns > until
    engine.mute = True
    engine.feed(mido.Message("note_on", note=60, velocity=70), until + 100 * MS)
    engine.tick(until + 200 * MS)
    assert engine.window.features[-1, encoding.features.index("sounding")] == encoding.nothing_sounding
    # The session memory learns the length it sounded, cut by the mute, as the window does.
    assert engine.head_memory["length"]._symbols[-1] == encoding.length_class(until - own.onset_ns, own.unit_ns)


def test_a_chord_still_gathered_at_a_panic_is_forgotten_with_the_rest(expressive: ModelRunner) -> None:
    """Struck just before the panic, inside its chord window: it joins the window then and
    is forgotten with the held keys, instead of sounding on for 32 tokens."""
    engine = Engine(expressive, EngineSettings(chord_window_ms=40), lambda m: None, 0)
    engine.mute = True
    encoding = engine.encoding
    assert encoding is not None
    sounding = encoding.features.index("sounding")
    engine.feed(mido.Message("note_on", note=48, velocity=70), 1500 * MS)  # held through the panic
    engine.feed(mido.Message("control_change", control=engine.settings.cc_panic, value=127), 1510 * MS)
    assert engine.window.tokens()[-1] == "C3", "the chord it was gathering joined the window"
    for t, msg in phrase([(2000, 65), (2500, 67)], duration_ms=200):
        engine.feed(msg, t)
        engine.tick(t + 50 * MS)
    assert engine.window.features[-1, sounding] == encoding.nothing_sounding
