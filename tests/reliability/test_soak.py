"""Soak: hours of playing in simulated time through the real engine and the shipped model.

A seeded random musician (:mod:`tests.reliability.session`) plays phrases, chords, the
pedal, odd input and every control (mode switches through duet/jam/solo, mute, panic,
temperature) into an :class:`~mididuet.daemon.engine.engine.Engine` running the real ONNX model with
onnxruntime. Time is simulated, so an hour takes well under a minute; the engine's own
work (window, query, sampling, ledger) is real and is timed with the real clock.

Asserted:

- memory: Python blocks allocated (``sys.getallocatedblocks`` after a collection) and the
  process's RSS, after the first window vs at the end — within a stated tolerance;
- decision time: a fixed probe (300 decisions, window -> model -> sampler, through the
  engine's own objects, CPU time) on the played engine at the end against a fresh engine
  on the same model, the two probed turn about, best median of 5 each: a baseline taken
  in the same moment, so a burst of load on a shared machine hits both (a probe at the
  start against one at the end read 1.63x once in a clean-clone CI run with nothing
  grown). The session's own decision times (window -> model -> sampler -> message) of
  the first and last windows are reported too, with a looser bound: their mix of modes
  differs (a duet's first token is decided at its deadline, jam's ahead);
- every note released: nothing sounding after the stop, the ledger empty, no note-on for
  a note already sounding, and no answer note held longer than the longest pulse;
- bounded internals: the ledger's queue of scheduled note-offs stays small.

``make test`` plays 10 simulated minutes; ``pytest tests/reliability --long`` plays an hour.
Each run prints its figures (``-s`` shows them; docs/reliability.md records them).
"""

from __future__ import annotations

import gc
import os
import sys
import time
from pathlib import Path

import pytest

from mididuet.daemon.engine.engine import Engine
from mididuet.daemon.engine.settings import EngineSettings
from mididuet.daemon.engine.simulate import SimulatedClock
from mididuet.daemon.engine.stats import Stats
from mididuet.daemon.music.units import NS_PER_S as SECOND
from mididuet.daemon.music.units import bpm_to_ns
from mididuet.daemon.play.pulse import MIN_BPM, NOTE_LENGTH
from mididuet.daemon.play.rhythm import MAX_NOTE_NS
from mididuet.daemon.predict.bundle import load_bundle, shipped_model_path
from mididuet.daemon.predict.memory import SPAN
from tests.helpers.bundles import make_bundle
from tests.reliability.session import OutputCheck, drive, session

pytestmark = pytest.mark.timing  # it compares the decision's time early and late on this machine

SHORT_MINUTES, LONG_MINUTES = 10, 60
# Tolerances. Memory: the engine holds fixed-size structures only, so growth after the
# first window is noise (allocator caches): 9-103 blocks over 10 minutes with the first
# model, 145-290 with the expressive one (2026-12-06, counted before the probe's fresh
# engine exists; counted after, 220-350); 400 blocks is ~40 kB, and a mutant
# keeping one tuple per token pushed grew by 6,637 blocks (1,426 with the first model) and
# failed. RSS: the issue's ±10 MB.
MAX_BLOCK_GROWTH = 400
MAX_RSS_GROWTH_MB = 10.0
# Decision time is wall time on a shared, noisy machine: a ratio of medians measured in the
# same run. Anything that grows with the session (an O(n) history) would
# show as a ratio far above this over an hour.
MAX_PROBE_RATIO = 1.5
MAX_SESSION_RATIO = 2.5
PROBE_DECISIONS, PROBE_REPEATS = 300, 5
LONGEST_NOTE_NS = int(bpm_to_ns(MIN_BPM) * NOTE_LENGTH)  # the slowest pulse's note length
MAX_SCHEDULED_OFFS = 256
BLOCKS_PER_CONTEXT = 2  # a memory context's tuple and its numpy row


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _median_decision_ns(engine: Engine) -> int:
    """The median of one of the engine's decisions (query, memory, sampler, heads) on its
    window, in this thread's CPU time: other processes steal wall time in bursts, not CPU time."""
    times = []
    for _ in range(PROBE_DECISIONS):
        started = time.thread_time_ns()
        engine._prepare()
        times.append(time.thread_time_ns() - started)
        engine._discard_prepared()
    return sorted(times)[len(times) // 2]


def _probe_ms(played: Engine, fresh: Engine) -> tuple[float, float]:
    """Best of 5 medians for the played engine and for a fresh one, measured turn about
    (ms), so that the machine's load at this moment weighs on both alike."""
    best_played, best_fresh = [], []
    for _ in range(PROBE_REPEATS):
        best_fresh.append(_median_decision_ns(fresh))
        best_played.append(_median_decision_ns(played))
    return min(best_played) / 1e6, min(best_fresh) / 1e6


def _contexts(engine: Engine) -> int:
    return sum(len(m._rows) for m in (engine.memory, *engine.head_memory.values()))


def _blocks() -> int:
    gc.collect()
    return sys.getallocatedblocks()


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped Chopin model (167 tokens, the real network); the tiny one if not built."""
    shipped = shipped_model_path()
    return shipped if shipped.is_file() else make_bundle(tmp_path_factory.mktemp("m") / "tiny.onnx", seed=3)


def soak(model_path: Path, minutes: int, seed: int = 11) -> dict[str, float]:
    """Play ``minutes`` of simulated session; returns the figures (and asserts nothing)."""
    model = load_bundle(model_path)
    settings = EngineSettings(seed=seed, phrase_gap_ms=500)
    clock = SimulatedClock()
    out = OutputCheck(clock)
    engine = Engine(model, settings, out, 0)
    length = minutes * 60 * SECOND
    window = length // 6  # first and last sixth: 100 s of 10 minutes, 10 of 60
    first, last = Stats(time.perf_counter_ns), Stats(time.perf_counter_ns)
    engine.stats = first
    figures: dict[str, float] = {"max_scheduled_offs": 0}

    def measure(t_ns: int) -> None:
        figures["max_scheduled_offs"] = max(figures["max_scheduled_offs"], len(engine.ledger._offs))
        if t_ns >= window and "blocks_start" not in figures:
            engine.stats = None  # the middle is played but not timed
            figures["blocks_start"], figures["rss_start_mb"] = _blocks(), _rss_mb()
            figures["contexts_start"] = _contexts(engine)
        if t_ns >= length - window and engine.stats is None:
            engine.stats = last

    started = time.perf_counter()
    drive(engine, session(seed, length, settings), length, clock, at=measure, every_ns=5 * SECOND)
    figures["wall_s"] = time.perf_counter() - started
    # Before the probe's fresh engine exists: its own ~200 blocks are not the session's growth.
    figures["blocks_end"], figures["rss_end_mb"] = _blocks(), _rss_mb()
    fresh = Engine(model, settings, OutputCheck(SimulatedClock()), 0)
    figures["probe_end_ms"], figures["probe_fresh_ms"] = _probe_ms(engine, fresh)
    figures.update(
        minutes=minutes, note_ons=out.note_ons, note_offs=out.note_offs, messages_out=out.messages,
        sounding_after_stop=len(out.sounding), ledger_after_stop=len(engine.ledger), restruck=out.restruck,
        longest_note_ms=out.longest_ns / 1e6, expressive=engine.expressive,
        memory_symbols=max(len(m) for m in (engine.memory, *engine.head_memory.values())),
        memory_contexts=max(len(m._rows) for m in (engine.memory, *engine.head_memory.values())),
        decision_first_p50_ms=first.decision.percentile(50) / 1e6,
        decision_last_p50_ms=last.decision.percentile(50) / 1e6,
        decision_first_p99_ms=first.decision.percentile(99) / 1e6,
        decision_last_p99_ms=last.decision.percentile(99) / 1e6,
        decisions_first=first.decision.count, decisions_last=last.decision.count,
    )
    figures["probe_ratio"] = figures["probe_end_ms"] / figures["probe_fresh_ms"]
    figures["decision_ratio_p50"] = figures["decision_last_p50_ms"] / figures["decision_first_p50_ms"]
    # The session memory fills up to its span (bounded, asserted in check): each context it
    # adds in the meantime is a tuple and a row of counts.
    figures["memory_blocks"] = BLOCKS_PER_CONTEXT * max(_contexts(engine) - figures["contexts_start"], 0)
    figures["block_growth"] = figures["blocks_end"] - figures["blocks_start"] - figures["memory_blocks"]
    figures["rss_growth_mb"] = figures["rss_end_mb"] - figures["rss_start_mb"]
    return figures


def check(figures: dict[str, float]) -> None:
    print("\nsoak figures: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                         for k, v in figures.items()))
    assert figures["note_ons"] > 100 * figures["minutes"], "the session must actually play"
    assert figures["sounding_after_stop"] == 0 and figures["ledger_after_stop"] == 0, "every note released"
    assert figures["note_offs"] == figures["note_ons"] - figures["restruck"]
    assert figures["restruck"] == 0, "the ledger ends a note before striking it again"
    longest = MAX_NOTE_NS if figures["expressive"] else LONGEST_NOTE_NS
    assert figures["longest_note_ms"] * 1e6 <= longest + 1, "no answer note outlives its cap"
    assert figures["memory_symbols"] <= SPAN and figures["memory_contexts"] <= 2 * SPAN, "the memory is bounded"
    assert figures["max_scheduled_offs"] <= MAX_SCHEDULED_OFFS
    assert figures["decisions_first"] > 50 and figures["decisions_last"] > 50
    assert figures["block_growth"] <= MAX_BLOCK_GROWTH, "Python heap grew"
    assert figures["rss_growth_mb"] <= MAX_RSS_GROWTH_MB, "RSS grew"
    assert figures["probe_ratio"] <= MAX_PROBE_RATIO, "decision time grew"
    assert figures["decision_ratio_p50"] <= MAX_SESSION_RATIO, "the session's decision time grew"


def test_soak_minutes_of_playing(model_path: Path) -> None:
    figures = soak(model_path, SHORT_MINUTES)
    check(figures)


def test_soak_an_hour(model_path: Path, long_run: bool) -> None:
    if not long_run:
        pytest.skip("an hour of simulated playing: pytest --long (or MIDIDUET_LONG=1)")
    check(soak(model_path, LONG_MINUTES))
