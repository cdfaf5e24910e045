"""Benchmark the offline side of mididuet: corpus reading, one prediction, one training epoch.

Three measurements, each against a baseline taken in the same run (these shared machines
are noisy, so only same-run ratios are comparable):

1. Reading the Chopin set without cache, 2 worker processes: the ``mido`` reader vs the
   ``music21`` reader (the reference notebook's), wall time and tokens counted by each.
   Target: music21 / mido >= 20x.
2. One prediction of a (1, 32) int32 window: onnxruntime through the daemon's
   ``ModelRunner`` (1 intra-op thread) on the shipped model vs Keras ``model.predict``,
   a ``tf.function`` and eager ``model(x)`` on the same architecture
   (``build_seed_model(V)`` with the shipped V, untrained: weights do not change timing).
   Targets: onnxruntime p99 <= 0.3 ms and predict p50 / onnxruntime p50 >= 100x.
3. One training epoch of the seed model (batch 128, default split by pieces) on all
   training windows, against one epoch on 10% of them (run before and after).

Corpus reading runs first, before TensorFlow is imported, so the reader processes are
forked from a process without TensorFlow's threads.

Run: ``.venv/bin/python benchmarks/bench_training.py [--quick] [--skip-music21]``.
Exit status 0 when every measured target is met, 1 otherwise (the missed ones are named).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow: warnings and errors only
# music21 warns once per file about unnamed instruments; the forked readers inherit this filter.
warnings.filterwarnings("ignore", message="Unable to determine instrument")

ROOT = Path(__file__).resolve().parent.parent
from machine import describe, loadavg  # noqa: E402  (benchmarks/, the script's own directory)

from mididuet.daemon.predict.bundle import WINDOW, ModelRunner  # noqa: E402
from mididuet.training.corpus import Corpus, read_corpus  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "piano-midi" / "midis" / "Chopin"
DEFAULT_MODEL = ROOT / "models" / "chopin.onnx"
WORKERS = 2
BATCH = 128
BASELINE_FRACTION = 0.10

TARGET_READ_RATIO = 20.0
TARGET_ORT_P99_MS = 0.3
TARGET_PREDICT_RATIO = 100.0


@dataclass
class Iterations:
    mido_reads: int
    ort: int
    tf_function: int
    eager: int
    predict: int


FULL = Iterations(mido_reads=3, ort=5000, tf_function=500, eager=100, predict=100)
QUICK = Iterations(mido_reads=1, ort=1000, tf_function=100, eager=20, predict=20)


@dataclass
class Summary:
    """Latency percentiles of one series of timings, in milliseconds."""

    n: int
    p50: float
    p90: float
    p99: float
    max: float
    mean: float

    @classmethod
    def of(cls, seconds: list[float]) -> Summary:
        ms = np.asarray(seconds) * 1e3
        p50, p90, p99 = np.percentile(ms, [50, 90, 99])
        return cls(len(ms), float(p50), float(p90), float(p99), float(ms.max()), float(ms.mean()))


@dataclass
class Report:
    """Everything measured, plus the targets' verdicts."""

    lines: list[str] = field(default_factory=list)
    verdicts: list[tuple[str, bool, str]] = field(default_factory=list)  # (target, met, measured)

    def say(self, text: str = "") -> None:
        self.lines.append(text)
        print(text, flush=True)

    def target(self, name: str, met: bool, measured: str) -> None:
        self.verdicts.append((name, met, measured))


def time_calls(call: Callable[[], object], iterations: int, warmup: int) -> Summary:
    """Wall time of each of ``iterations`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        call()
    timings = []
    clock = time.perf_counter
    for _ in range(iterations):
        start = clock()
        call()
        timings.append(clock() - start)
    return Summary.of(timings)


@dataclass
class ReadTiming:
    wall: float  # seconds
    cpu: float  # seconds of CPU, this process and its (joined) reader processes


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed_read(data: Path, reader: str) -> tuple[ReadTiming, Corpus]:
    """Wall and CPU time of one uncached read (the reader pool is joined before it returns)."""
    cpu, start = cpu_seconds(), time.perf_counter()
    corpus = read_corpus(data, reader, workers=WORKERS, use_cache=False, warn=lambda _m: None)
    return ReadTiming(time.perf_counter() - start, cpu_seconds() - cpu), corpus


def read_music21_cold(data: Path) -> tuple[ReadTiming, Corpus]:
    """A music21 read that neither uses nor leaves music21's own pickle cache.

    ``converter.parse`` stores every parsed file as a pickle in music21's scratch directory
    (``/tmp/music21`` by default) and loads it on the next parse, so a second run in the
    same machine is 2x faster whatever ``use_cache`` says. The scratch directory is set in
    memory only (never written to the user's settings) before the reader processes fork.
    """
    from music21 import environment

    env = environment.Environment()
    previous = env["directoryScratch"]
    with tempfile.TemporaryDirectory(prefix="bench-music21-") as scratch:
        env["directoryScratch"] = scratch
        try:
            return timed_read(data, "music21")
        finally:
            env["directoryScratch"] = previous


def distinct(corpus: Corpus) -> int:
    return len({t for p in corpus.pieces for t in p.tokens})


# -- 1. corpus reading --------------------------------------------------------------------


def bench_reading(report: Report, data: Path, its: Iterations, skip_music21: bool) -> Corpus:
    report.say(f"## 1. Reading {data.name} ({len(list(data.glob('*.mid*')))} files), "
               f"use_cache=False, {WORKERS} worker processes")
    mido_runs: list[ReadTiming] = []
    corpus: Corpus | None = None
    for _ in range(its.mido_reads):
        timing, corpus = timed_read(data, "mido")
        mido_runs.append(timing)
    assert corpus is not None
    # The run with the median wall time stands for mido (a single run when --quick).
    mido = sorted(mido_runs, key=lambda r: r.wall)[len(mido_runs) // 2]
    rows = [("mido", mido, corpus)]
    m21: tuple[ReadTiming, Corpus] | None = None
    if not skip_music21:
        m21 = read_music21_cold(data)
        rows.append(("music21", m21[0], m21[1]))
    report.say()
    report.say("| reader | wall s | CPU s | pieces | skipped | tokens | distinct tokens | wall ÷ mido | CPU ÷ mido |")
    report.say("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, t, c in rows:
        report.say(f"| {name} | {t.wall:.2f} | {t.cpu:.2f} | {len(c.pieces)} | {len(c.skipped)} | {c.token_count:,} "
                   f"| {distinct(c)} | {t.wall / mido.wall:.1f}x | {t.cpu / mido.cpu:.1f}x |")
    report.say()
    report.say("mido runs (wall / CPU s): " + ", ".join(f"{r.wall:.2f} / {r.cpu:.2f}" for r in mido_runs)
               + " (the median-wall run shown); CPU = this process + its reader processes")
    if m21 is not None:
        report.say("music21's own parse cache (pickles in its scratch directory, which read_corpus(use_cache=False) "
                   "does not turn off) pointed at an empty temporary directory: a cold read, as on first use")
        ratio = m21[0].wall / mido.wall
        report.target(f"music21 / mido reading wall time >= {TARGET_READ_RATIO:.0f}x", ratio >= TARGET_READ_RATIO,
                      f"{ratio:.1f}x")
    else:
        report.say("music21 reader skipped (--skip-music21): no reading ratio measured")
    report.say()
    return corpus


# -- 2. one prediction --------------------------------------------------------------------


def bench_prediction(report: Report, model_path: Path, its: Iterations) -> int:
    runner = ModelRunner(model_path)
    vocab = runner.info.size
    rng = np.random.default_rng(0)
    window = rng.integers(0, vocab, size=WINDOW, dtype=np.int32)
    batch = window.reshape(1, WINDOW)

    ort = time_calls(lambda: runner.query(window), its.ort, warmup=200)

    import keras
    import tensorflow as tf

    from mididuet.training.model import build_seed_model

    keras.utils.set_random_seed(0)
    model = build_seed_model(vocab)
    x_tf = tf.constant(batch)

    @tf.function(input_signature=[tf.TensorSpec((None, WINDOW), tf.int32)])
    def serve(tokens: tf.Tensor) -> tf.Tensor:
        return model(tokens, training=False)

    tff = time_calls(lambda: serve(x_tf).numpy(), its.tf_function, warmup=20)
    eager = time_calls(lambda: model(x_tf, training=False).numpy(), its.eager, warmup=5)
    predict = time_calls(lambda: model.predict(batch, verbose=0), its.predict, warmup=5)

    threads = tf.config.threading.get_intra_op_parallelism_threads()
    report.say(f"## 2. One prediction of a (1, {WINDOW}) int32 window, V = {vocab} (shipped vocabulary)")
    report.say()
    report.say(f"onnxruntime: {model_path.relative_to(ROOT) if model_path.is_relative_to(ROOT) else model_path} "
               "through mididuet.daemon.predict.bundle.ModelRunner.query (1 intra-op thread, full graph optimisation).")
    report.say(f"Keras: build_seed_model({vocab}), untrained (weights do not change timing); TensorFlow "
               f"{tf.__version__}, intra-op threads {threads or 'default (all cores)'}. "
               "Every call returns a numpy array.")
    report.say()
    report.say("| runtime | calls | p50 ms | p90 ms | p99 ms | max ms | p50 ÷ onnxruntime | p99 ÷ onnxruntime |")
    report.say("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, s in (("onnxruntime (ModelRunner)", ort), ("tf.function", tff), ("eager model(x)", eager),
                    ("Keras model.predict", predict)):
        report.say(f"| {name} | {s.n} | {s.p50:.3f} | {s.p90:.3f} | {s.p99:.3f} | {s.max:.3f} "
                   f"| {s.p50 / ort.p50:.1f}x | {s.p99 / ort.p99:.1f}x |")
    report.say()
    report.target(f"onnxruntime p99 <= {TARGET_ORT_P99_MS} ms", ort.p99 <= TARGET_ORT_P99_MS, f"{ort.p99:.3f} ms")
    ratio = predict.p50 / ort.p50
    report.target(f"predict p50 / onnxruntime p50 >= {TARGET_PREDICT_RATIO:.0f}x", ratio >= TARGET_PREDICT_RATIO,
                  f"{ratio:.0f}x")
    return vocab


# -- 3. one training epoch ------------------------------------------------------------------


def bench_epoch(report: Report, corpus: Corpus, shipped_vocab: int) -> None:
    import keras

    from mididuet.training.dataset import build_dataset
    from mididuet.training.model import build_seed_model

    ds = build_dataset(corpus.pieces)  # defaults: split by pieces, 20% held out, min_count 40, seed 42
    x, y = ds.x_train, ds.y_train
    vocab = len(ds.vocabulary)
    rng = np.random.default_rng(42)
    n_small = round(len(x) * BASELINE_FRACTION)
    small = rng.choice(len(x), size=n_small, replace=False)
    xs, ys = x[small], y[small]

    keras.utils.set_random_seed(42)
    model = build_seed_model(vocab)
    # Warm-up: trace the train step for full and partial batches before timing anything.
    warm = BATCH * 3 + 17
    model.fit(x[:warm], y[:warm], epochs=1, batch_size=BATCH, shuffle=True, verbose=0)

    def epoch(xe: np.ndarray, ye: np.ndarray) -> float:
        start = time.perf_counter()
        model.fit(xe, ye, epochs=1, batch_size=BATCH, shuffle=True, verbose=0)
        return time.perf_counter() - start

    small_before = epoch(xs, ys)
    full = epoch(x, y)
    small_after = epoch(xs, ys)
    small_mean = (small_before + small_after) / 2

    report.say(f"## 3. One training epoch, seed model (V = {vocab}, {model.count_params():,} parameters), "
               f"batch {BATCH}, split by pieces (mido-read corpus)")
    if vocab != shipped_vocab:
        report.say(f"note: this vocabulary ({vocab}) differs from the shipped model's ({shipped_vocab})")
    report.say()
    report.say("| run | windows | batches | seconds | samples/s |")
    report.say("|---|---:|---:|---:|---:|")
    for name, n, s in ((f"{BASELINE_FRACTION:.0%} of windows, before", n_small, small_before),
                       ("all training windows", len(x), full),
                       (f"{BASELINE_FRACTION:.0%} of windows, after", n_small, small_after)):
        report.say(f"| {name} | {n:,} | {-(-n // BATCH)} | {s:.2f} | {n / s:,.0f} |")
    report.say()
    report.say(f"full epoch ÷ mean {BASELINE_FRACTION:.0%} epoch: {full / small_mean:.2f}x the time for "
               f"{len(x) / n_small:.2f}x the windows; throughput full ÷ {BASELINE_FRACTION:.0%}: "
               f"{(len(x) / full) / (n_small / small_mean):.2f}; "
               f"{full / len(x) * 100_000:.1f} s per 100k samples")
    per_sample = (full - small_mean) / (len(x) - n_small)
    report.say(f"derived from these runs (time = fixed + per-sample × windows): fixed cost per fit call "
               f"{small_mean - per_sample * n_small:.2f} s, {per_sample * 1e3:.3f} ms per sample "
               f"({1 / per_sample:,.0f} samples/s marginal)")
    report.say()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations (a rougher p99), one mido read")
    parser.add_argument("--skip-music21", action="store_true", help="skip the ~2-minute music21 reading")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="corpus directory (default: %(default)s)")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="ONNX bundle (default: %(default)s)")
    args = parser.parse_args(argv)
    its = QUICK if args.quick else FULL

    report = Report()
    started = time.perf_counter()
    report.say(f"# bench_training {'(quick)' if args.quick else '(full)'} — {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    report.say(f"machine: {describe()} at start")
    report.say()

    corpus = bench_reading(report, args.data, its, args.skip_music21)
    report.say(f"load average after reading: {loadavg()}")
    report.say()
    vocab = bench_prediction(report, args.model, its)
    report.say(f"load average after predictions: {loadavg()}")
    report.say()
    bench_epoch(report, corpus, vocab)
    report.say(f"load average at end: {loadavg()}; total wall time {time.perf_counter() - started:.0f} s")
    report.say()

    report.say("## Targets")
    report.say()
    report.say("| target | measured | met |")
    report.say("|---|---:|---|")
    for name, met, measured in report.verdicts:
        report.say(f"| {name} | {measured} | {'yes' if met else 'NO'} |")
    missed = [name for name, met, _ in report.verdicts if not met]
    report.say()
    if missed:
        report.say(f"MISSED {len(missed)} target(s): {'; '.join(missed)}")
        return 1
    report.say(f"all {len(report.verdicts)} measured targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
