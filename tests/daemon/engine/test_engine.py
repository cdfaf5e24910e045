"""Engine: the three modes, cutting in, controls, thru, filters, and the ledger's promise.

All in simulated time over a real onnxruntime session of a tiny bundle.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from itertools import pairwise

import mido
import pytest

from mididuet.daemon.engine.controls import CC_TEMPERATURE_RANGE
from mididuet.daemon.engine.engine import KEEP_DECIDED_NS, Engine
from mididuet.daemon.engine.modes import ANSWER_LEAD_NS, FIRST_TOKEN_LEAD_NS
from mididuet.daemon.engine.observe import TokenLog
from mididuet.daemon.engine.settings import EngineSettings
from mididuet.daemon.engine.simulate import SimulatedClock, phrase, run_simulation
from mididuet.daemon.engine.stats import Stats
from mididuet.daemon.music.midi import ALL_NOTES_OFF
from mididuet.daemon.music.units import NS_PER_MS as MS
from mididuet.daemon.music.units import NS_PER_S as SECOND
from mididuet.daemon.predict.bundle import ModelRunner
from tests.helpers.engine import Sink
from tests.helpers.jack import hanging

Timed = list[tuple[int, mido.Message]]


def simulate(model: ModelRunner, events: Timed, until_ns: int, **fields: object) -> Timed:
    fields.setdefault("seed", 7)
    settings = EngineSettings(**fields)  # type: ignore[arg-type]
    return run_simulation(lambda send, now: Engine(model, settings, send, now), events, until_ns)


def note_ons(out: Timed) -> Timed:
    return [(t, m) for t, m in out if m.type == "note_on" and m.velocity > 0]


def onsets(out: Timed) -> list[int]:
    return sorted({t for t, _ in note_ons(out)})


CALL = [(0, 60), (400, 62), (800, 64), (1200, 65)]  # four tokens, 400 ms apart, last off at 1.5 s


def test_duet_answers_after_the_gap_as_long_as_the_call(model: ModelRunner) -> None:
    out = simulate(model, phrase(CALL), 8 * SECOND, channel=3)
    starts = onsets(out)
    assert starts[0] == 1500 * MS + 600 * MS  # last release + phrase gap
    assert len(starts) == 4  # one token per call token
    assert [b - a for a, b in pairwise(starts)] == [400 * MS] * 3  # the player's pulse
    assert all(m.channel == 2 for _, m in out)  # channel 3, 0-based on the wire
    assert all(21 <= m.note <= 108 for _, m in note_ons(out))
    assert all(m.velocity == 80 for _, m in note_ons(out))
    assert not hanging(out)


def test_answer_tokens_fixes_the_length(model: ModelRunner) -> None:
    out = simulate(model, phrase(CALL), 10 * SECOND, answer_tokens=7)
    assert len(onsets(out)) == 7


def test_a_slow_player_gets_a_longer_gap(model: ModelRunner) -> None:
    slow = [(0, 60), (1000, 62), (2000, 64)]  # one token a second: 1.5 s > the 600 ms phrase gap
    out = simulate(model, phrase(slow, duration_ms=900), 10 * SECOND)
    assert onsets(out)[0] == 2900 * MS + 1500 * MS  # 1.5 x the player's inter-onset time


def test_a_held_pedal_delays_the_answer(model: ModelRunner) -> None:
    pedal = [(100 * MS, mido.Message("control_change", control=64, value=127)),
             (3000 * MS, mido.Message("control_change", control=64, value=0))]
    events = sorted([*phrase(CALL), *pedal], key=lambda e: e[0])
    out = simulate(model, events, 8 * SECOND)
    assert onsets(out)[0] == 3600 * MS


def test_a_new_player_note_cuts_the_answer_short(model: ModelRunner) -> None:
    long_call = [(i * 300, 60 + i) for i in range(10)]  # ends at 2.7 s + 300 ms
    interrupt = phrase([(4000, 72)])
    out = simulate(model, phrase(long_call) + interrupt, 5 * SECOND)
    answer = [(t, m) for t, m in out if t < 4000 * MS]
    assert onsets(answer) == [3600 * MS, 3900 * MS]  # the gap after the 3.0 s release, pulse 300 ms
    at_cut = [m for t, m in out if t == 4000 * MS]
    assert at_cut and all(m.type == "note_off" for m in at_cut)  # released at once, not at 4.17 s
    # The interruption is a new call of one token: its answer comes after its own gap.
    assert onsets([(t, m) for t, m in note_ons(out) if t > 4000 * MS]) == [4900 * MS]
    assert not hanging(out)


def test_a_chord_in_the_window_enters_as_one_token(build: Callable[..., tuple[Engine, Sink]]) -> None:
    engine, _ = build()
    for t, msg in phrase([(0, [60, 64, 67])], duration_ms=100):
        engine.feed(msg, t)
    engine.feed(mido.Message("note_on", note=72, velocity=90), 30 * MS)  # still within 40 ms
    engine.tick(40 * MS)
    assert engine.window.tokens()[-1] == "0.4.7"
    assert engine.window.tokens()[-2] != "0.4.7"


def test_unknown_tokens_are_dropped_from_the_window(build: Callable[..., tuple[Engine, Sink]]) -> None:
    engine, _ = build()
    before = engine.window.ids.copy()
    engine.feed(mido.Message("note_on", note=61, velocity=90), 0)  # C#4 is not in the tiny vocabulary
    engine.tick(50 * MS)
    assert list(engine.window.ids) == list(before)


def test_jam_plays_at_the_pulse_with_the_player_and_stops_when_left_alone(model: ModelRunner) -> None:
    call = [(i * 500, 60 + (i % 5)) for i in range(8)]  # 120 BPM for 4 s
    captured: list[Engine] = []

    def factory(send: Callable[[mido.Message], None], now: int) -> Engine:
        captured.append(Engine(model, EngineSettings(mode="jam", seed=1), send, now))
        return captured[0]

    out = run_simulation(factory, phrase(call, duration_ms=200), 30 * SECOND)
    starts = onsets(out)
    assert starts[0] == 500 * MS  # one pulse after the player's first token
    assert starts[:8] == [(500 + 500 * i) * MS for i in range(8)]  # plays while the player plays
    # The player's last activity is at 3.7 s; 16 pulses later it stops.
    assert starts[-1] < 3700 * MS + 16 * 500 * MS + 500 * MS
    assert not hanging(out)


def test_jam_window_holds_both_sides(model: ModelRunner) -> None:
    log = TokenLog()
    chosen = log.tokens
    engine = Engine(model, EngineSettings(mode="jam", seed=1), lambda m: None, 0, observers=[log])
    for t, msg in phrase([(0, 67), (500, 69)], duration_ms=100):
        engine.feed(msg, t)
        engine.tick(t)
    engine.tick(600 * MS)
    assert engine.tick(1000 * MS) is not None
    tokens = engine.window.tokens()
    assert "G4" in tokens[-4:] and "A4" in tokens[-4:]
    assert tokens[-1] == chosen[-1]


def test_solo_plays_from_the_primer_on_its_own(model: ModelRunner) -> None:
    out = simulate(model, [], 3 * SECOND, mode="solo", bpm=120)
    assert onsets(out) == [i * 500 * MS for i in range(7)]  # 0, 0.5 .. 3.0 s
    assert not hanging(out)


def test_follow_clock_sets_the_pulse(model: ModelRunner) -> None:
    tick = 600 * MS // 24  # 100 BPM
    clock = [(i * tick, mido.Message("clock")) for i in range(24 * 6)]
    out = simulate(model, clock, 3 * SECOND, mode="solo", follow_clock=True)
    starts = onsets(out)
    assert starts[-1] - starts[-2] == pytest.approx(600 * MS, rel=1e-3)


def test_same_seed_same_answer_other_seed_other_answer(model: ModelRunner) -> None:
    a = simulate(model, phrase(CALL * 1), 8 * SECOND, seed=1, answer_tokens=16)
    b = simulate(model, phrase(CALL * 1), 8 * SECOND, seed=1, answer_tokens=16)
    c = simulate(model, phrase(CALL * 1), 8 * SECOND, seed=2, answer_tokens=16)
    assert [(t, m.bytes()) for t, m in a] == [(t, m.bytes()) for t, m in b]
    assert [m.bytes() for _, m in a] != [m.bytes() for _, m in c]


def test_velocity_follows_the_player_or_is_fixed(model: ModelRunner) -> None:
    soft = phrase(CALL, velocity=33)
    assert {m.velocity for _, m in note_ons(simulate(model, soft, 8 * SECOND))} == {33}
    assert {m.velocity for _, m in note_ons(simulate(model, soft, 8 * SECOND, velocity=110))} == {110}


def test_thru_forwards_the_player_on_the_output_channel(model: ModelRunner) -> None:
    events = phrase([(0, 60)], duration_ms=100, channel=5)
    out = simulate(model, events, 200 * MS, thru=True, channel=2)
    notes = [(t, m.type, m.channel, m.note) for t, m in out if m.type in ("note_on", "note_off")]
    assert notes == [(0, "note_on", 1, 60), (100 * MS, "note_off", 1, 60)]
    assert not simulate(model, events, 200 * MS)  # without thru nothing is sent yet


def test_channel_in_filters_the_player(model: ModelRunner) -> None:
    other = phrase(CALL, channel=4)
    assert not note_ons(simulate(model, other, 6 * SECOND, channel_in=1))
    assert note_ons(simulate(model, other, 6 * SECOND, channel_in=5))


def test_odd_input_is_ignored(build: Callable[..., tuple[Engine, Sink]]) -> None:
    engine, sink = build()
    odd = [
        mido.Message("sysex", data=[1, 2, 3]),
        mido.Message("active_sensing"),
        mido.Message("clock"),
        mido.Message("start"),
        mido.Message("songpos", pos=10),
        mido.Message("note_off", note=99),  # never pressed
        mido.Message("note_on", note=0, velocity=10),  # C-1: not a token the model knows
        mido.Message("note_off", note=0),
        mido.Message("pitchwheel", pitch=100),
        mido.Message("control_change", control=7, value=100),
        mido.Message("program_change", program=3),
    ]
    window = engine.window.ids.copy()
    for i, msg in enumerate(odd):
        engine.feed(msg, i * MS)
        engine.tick(i * MS)
    engine.tick(5 * SECOND)
    assert engine.listener.held == set()
    assert list(engine.window.ids) == list(window)  # C-1 was dropped, nothing else was a token
    # The one real note (C-1) was a call of one token, so the answer is one token long.
    assert len([m for _, m in sink.sent if m.type == "note_on" and m.velocity > 0]) == 1


def test_cc_controls_temperature_mode_mute_and_panic(build: Callable[..., tuple[Engine, Sink]]) -> None:
    engine, sink = build(mode="solo", bpm=120)
    engine.tick(0)
    assert len(engine.ledger) > 0
    engine.feed(mido.Message("control_change", control=21, value=127), 1)
    assert engine.temperature == CC_TEMPERATURE_RANGE[1]
    engine.feed(mido.Message("control_change", control=21, value=0), 2)
    assert engine.temperature == CC_TEMPERATURE_RANGE[0]
    engine.feed(mido.Message("control_change", control=24, value=127), 3)  # panic
    assert len(engine.ledger) == 0
    assert sink.sent[-1][1].control == ALL_NOTES_OFF
    engine.tick(500 * MS)
    assert len(engine.ledger) > 0  # solo carries on after a panic
    engine.feed(mido.Message("control_change", control=23, value=127), 500 * MS + 1)  # mute
    assert engine.mute and len(engine.ledger) == 0
    assert engine.tick(SECOND) is None  # nothing more scheduled
    engine.feed(mido.Message("control_change", control=23, value=0), SECOND)  # unmute
    assert engine.tick(SECOND) is not None
    engine.feed(mido.Message("control_change", control=22, value=60), SECOND + 1)  # jam
    assert engine.mode == "jam" and len(engine.ledger) == 0
    engine.feed(mido.Message("control_change", control=22, value=0), SECOND + 2)
    assert engine.mode == "duet"
    engine.feed(mido.Message("control_change", control=22, value=127), SECOND + 3)
    assert engine.mode == "solo"


def test_muted_duet_listens_but_does_not_answer(model: ModelRunner) -> None:
    sink = Sink()
    engine = Engine(model, EngineSettings(seed=1), sink, 0)
    engine.mute = True
    for t, msg in phrase(CALL):
        engine.feed(msg, t)
        engine.tick(t)
    assert engine.tick(5 * SECOND) is None
    assert not note_ons(sink.sent)
    assert engine.window.tokens()[-4:] == ["C4", "D4", "E4", "F4"]


def test_set_mode_releases_notes_and_refuses_unknown_modes(build: Callable[..., tuple[Engine, Sink]]) -> None:
    engine, sink = build(mode="solo")
    engine.tick(0)
    engine.set_mode("duet")
    assert len(engine.ledger) == 0 and not hanging(sink.sent)
    assert engine.tick(SECOND) is None
    with pytest.raises(ValueError, match="mode must be one of"):
        engine.set_mode("trio")


def test_a_dead_port_propagates_and_leaves_the_ledger_consistent(model: ModelRunner) -> None:
    calls: list[mido.Message] = []
    alive = [True]

    def send(msg: mido.Message) -> None:
        if not alive[0]:
            raise OSError("port gone")
        calls.append(msg)

    engine = Engine(model, EngineSettings(mode="solo", bpm=120, seed=1), send, 0)
    engine.tick(0)
    alive[0] = False
    with pytest.raises(OSError):
        engine.tick(10 * SECOND)
    engine.release_all()  # must not raise
    engine.release_all()
    assert len(engine.ledger) == 0
    alive[0] = True
    engine.release_all()
    assert all(m.type == "control_change" for m in calls[-1:])


def test_a_token_whose_send_failed_has_spent_its_draws(model: ModelRunner) -> None:
    """A send that fails mid-token still spends that token's random draws: a decision
    dropped later starts again from after them, so it plays as if it had not been dropped."""
    def notes_after_a_failed_send(drop_a_decision: bool) -> list[int]:
        fail, played = [False], []

        def send(msg: mido.Message) -> None:
            if msg.type == "note_on":
                if fail[0]:
                    fail[0] = False
                    raise OSError("port gone")
                played.append(msg.note)

        engine = Engine(model, EngineSettings(mode="solo", bpm=120, seed=1), send, 0)
        now = 0
        while len(played) < 6:
            now = max(engine.tick(now) or now + MS, now + 1)
        fail[0] = True
        with pytest.raises(OSError):
            while True:
                now = max(engine.tick(now) or now + MS, now + 1)
        engine.mute = True  # the performance ends before that token is tried again
        engine.mute = False
        engine.tick(now)  # solo starts again: its first token decided ahead
        if drop_a_decision:
            engine.set_temperature(engine.temperature)
        del played[:]
        while len(played) < 12:
            now = max(engine.tick(now) or now + MS, now + 1)
        return played

    assert notes_after_a_failed_send(True) == notes_after_a_failed_send(False)


def test_stats_count_and_time_every_sent_note(model: ModelRunner) -> None:
    clock = SimulatedClock()
    stats = Stats(clock=clock.now)
    settings = EngineSettings(seed=1)
    out = run_simulation(lambda send, now: Engine(model, settings, send, now, stats=stats),
                         phrase(CALL), 8 * SECOND, clock=clock)
    assert stats.notes_in == 4
    assert stats.answers == 1
    assert stats.notes_out == len(note_ons(out))
    assert stats.decision.count == stats.lateness.count == stats.notes_out
    assert stats.lateness.max_ns == 0  # simulated time is never late


def test_never_a_hanging_note_after_a_busy_session(model: ModelRunner) -> None:
    import random

    rng = random.Random(4)
    events: Timed = []
    t = 0
    for _ in range(300):
        t += rng.choice([30, 90, 250, 700, 1500]) * MS
        note = rng.choice([60, 62, 64, 65, 67, 48, 72])
        events += [(t, mido.Message("note_on", note=note, velocity=rng.randint(1, 127))),
                   (t + rng.randint(10, 900) * MS, mido.Message("note_off", note=note))]
        if rng.random() < 0.05:
            events.append((t, mido.Message("control_change", control=22, value=rng.randint(0, 127))))
    events.sort(key=lambda e: e[0])
    out = simulate(model, events, t + SECOND, thru=True)
    assert len(note_ons(out)) > 50
    assert not hanging(out)


def counting_queries(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The engine's model, answering for real, counting its queries (undone after the test)."""
    queries: list[int] = []
    real_query = engine.model.query
    monkeypatch.setattr(engine.model, "query", lambda ids: queries.append(1) or real_query(ids))
    return queries


def test_only_our_controls_discard_the_token_decided_ahead(build) -> None:
    engine, _sink = build(mode="solo", bpm=120)
    engine.tick(0)  # plays the first token and decides the next one ahead
    decided = engine._prepared
    assert decided is not None
    for control in (1, 7, 11):  # mod wheel, volume, expression: not ours
        engine.feed(mido.Message("control_change", control=control, value=90), 1_000)
    assert engine._prepared == decided
    engine.feed(mido.Message("control_change", control=engine.settings.cc_temperature, value=90), 2_000)
    assert engine._prepared is None


def test_a_chord_closing_just_before_a_deadline_keeps_the_token_decided_ahead(build, monkeypatch) -> None:
    """Deciding again at the deadline would make the note late; further from it, the
    player's token goes into the decision at once."""
    engine, _sink = build(mode="jam", bpm=120)
    queries = counting_queries(engine, monkeypatch)
    chord_ns = int(engine.settings.chord_window_ms * MS)

    def chord_closing_before_the_deadline(before_ns: int, note: int) -> int:
        """A note whose chord window closes ``before_ns`` before the next token's deadline;
        returns how many decisions that took."""
        due = engine._next_token_ns
        assert due is not None and engine._prepared is not None
        engine.feed(mido.Message("note_on", note=note, velocity=80), due - before_ns - chord_ns)
        engine.feed(mido.Message("note_off", note=note), due - before_ns - chord_ns + MS)
        done = len(queries)
        engine.tick(due - before_ns)  # the chord closes: a player token
        decisions = len(queries) - done
        engine.tick(due)  # the token is played, the next one decided ahead
        return decisions

    engine.feed(mido.Message("note_on", note=60, velocity=80), 0)
    engine.feed(mido.Message("note_off", note=60), 10 * MS)
    deadline = engine.tick(10 * MS)
    while engine._next_token_ns is None or engine._prepared is None:  # to jam's first token
        deadline = engine.tick(deadline)
    engine.tick(engine._next_token_ns)
    assert chord_closing_before_the_deadline(KEEP_DECIDED_NS // 2, 64) == 0, "kept: only the send remains"
    assert chord_closing_before_the_deadline(50 * MS, 67) == 1, "decided again from the player's token"


def test_duet_decides_the_answers_first_token_just_before_the_phrase_ends(build, monkeypatch) -> None:
    """Deciding it at the phrase's end would make the answer's first note late by a
    decision; deciding in every pause of the phrase would cost one for nothing each time."""
    engine, sink = build(mode="duet")
    queries = counting_queries(engine, monkeypatch)
    for t, msg in phrase(CALL):
        engine.feed(msg, t)
        engine.tick(t)
    decide_at = engine.tick(1500 * MS)  # the last key is up: the phrase ends after the gap
    end = 2100 * MS
    assert decide_at == end - ANSWER_LEAD_NS
    assert queries == [], "no decision while the player was playing"
    assert engine.tick(decide_at) == end
    assert len(queries) == 1 and not note_ons(sink.sent)
    sink.now = end
    engine.tick(end)
    assert [t for t, _ in note_ons(sink.sent)] == [end]
    assert len(queries) == 2, "only the answer's second token was decided at the deadline (ahead)"


def test_a_dropped_decision_gives_its_random_draw_back(model: ModelRunner, build) -> None:
    """Which tokens play depends on what the player played, not on how often the engine
    decided ahead and dropped the decision (timing): the same seed gives the same answer
    whether the engine was ticked through the player's pauses or not."""
    # After the first note the player pauses until just before the phrase would end
    # (release at 300 ms + 600 ms gap): the answer's first token is decided at 880 ms and
    # dropped when the player's next chord closes.
    events = phrase([(0, 60), (890, 62), (1290, 64), (1690, 65)])
    fields = {"mode": "duet", "sampling": "temperature", "temperature": 1.5}
    ticked = simulate(model, events, 8 * SECOND, **fields)
    engine, sink = build(**fields)
    for t, msg in events:
        engine.feed(msg, t)  # no tick between the player's notes: no decision to drop
    deadline = engine.tick(events[-1][0])
    while deadline is not None and deadline < 8 * SECOND:
        deadline = engine.tick(deadline)
    assert len(note_ons(ticked)) >= 4
    assert [m.note for _, m in note_ons(ticked)] == [m.note for _, m in note_ons(sink.sent)]


def test_a_solo_built_before_the_loop_begins_plays_its_first_token_decided_ahead(build, monkeypatch) -> None:
    engine, sink = build(mode="solo", bpm=120)  # built at 0: the solo starts then
    queries = counting_queries(engine, monkeypatch)
    engine.begin(50 * MS)  # the ports took 50 ms to open
    deadline = engine.tick(50 * MS)
    assert deadline == 50 * MS + FIRST_TOKEN_LEAD_NS
    assert not note_ons(sink.sent) and len(queries) == 1  # decided, not yet played
    sink.now = deadline
    engine.tick(deadline)
    assert [t for t, _ in note_ons(sink.sent)][:1] == [deadline]
    assert len(queries) == 2  # the first token was not decided again: the next one was decided ahead


def test_a_solo_switched_to_while_running_plays_its_first_token_decided_ahead(build, monkeypatch) -> None:
    engine, sink = build(mode="duet", bpm=120)
    queries = counting_queries(engine, monkeypatch)
    engine.tick(10 * MS)
    engine.set_mode("solo")  # by the mode CC or a reload, at 10 ms
    deadline = engine.tick(10 * MS)
    assert deadline == 10 * MS + FIRST_TOKEN_LEAD_NS
    assert not note_ons(sink.sent) and len(queries) == 1
    engine.tick(deadline)
    assert len(note_ons(sink.sent)) >= 1 and len(queries) == 2


def test_a_chords_notes_go_out_before_they_are_counted_and_a_failed_send_keeps_the_counts(
        model: ModelRunner) -> None:
    """Counting a note (two histograms) waits until its chord's notes are all out, so it
    does not hold back the next note; a send that fails mid-chord still counts the notes
    that went out before it."""
    def play(fail_at: int | None) -> tuple[Stats, list[int]]:
        ticks = iter(range(0, 10**12, 1000))
        stats = Stats(clock=lambda: next(ticks))
        counted_when_sent: list[int] = []  # stats.notes_out as each note-on leaves

        def send(msg: mido.Message) -> None:
            if msg.type == "note_on":
                if len(counted_when_sent) == fail_at:
                    raise OSError("port gone")
                counted_when_sent.append(stats.notes_out)

        engine = Engine(model, EngineSettings(mode="solo", bpm=400, seed=3), send, 0, stats=stats)
        now = 0
        with pytest.raises(OSError) if fail_at is not None else nullcontext():
            while len(counted_when_sent) < 60:
                now = max(engine.tick(now) or now + MS, now + 1)
        return stats, counted_when_sent

    stats, counted = play(None)
    assert stats.notes_out == len(counted) == stats.decision.count
    inside = [i for i, before in enumerate(counted) if before < i]  # a chord's later notes
    assert inside, "the solo played no chord: nothing to check"
    stats, counted = play(inside[0])
    assert len(counted) == inside[0] and stats.notes_out == inside[0], "the chord's first notes counted"
