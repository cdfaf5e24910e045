"""The answers' two-sample test: its logistic regressions with BLAS's threads, or on one.

``mididuet-train answers`` (and the suite's tests of it) spends most of its time in
:func:`mididuet.training.answers.two_sample_accuracy`: 10 shuffles × 5 folds of a logistic
regression on a few hundred rows. On two cores with other work running, BLAS's threads
waited on each other for most of each fit. The test now runs them on one thread
(``threadpool_limits(1)``). This times the test both ways, alternating, on real excerpts:
the calls and the real continuations of the first Chopin pieces' phrases (the answers
tool's own phrases), and checks that both ways give the same accuracy.

    .venv/bin/python benchmarks/bench_two_sample.py [--pieces 3] [--rounds 4]

Prints each way's median time per test and the ratio one-thread ÷ default.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

from threadpoolctl import threadpool_info

from mididuet.training import answers
from mididuet.training.answers import Excerpt

ROOT = Path(__file__).resolve().parent.parent
CHOPIN = ROOT.parent / "shared" / "data" / "piano-midi" / "midis" / "Chopin"


def _timed(calls: Sequence[Excerpt], continuations: Sequence[Excerpt], threads: int | None) -> tuple[float, float]:
    """One two-sample test (the call against the real continuation): its seconds and accuracy."""
    started = time.perf_counter()
    accuracy = answers.two_sample_accuracy(calls, continuations, threads=threads)
    return time.perf_counter() - started, accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pieces", type=int, default=3, help="Chopin pieces whose phrases are tested (default: 3)")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds of both ways (default: 4)")
    args = parser.parse_args()
    found = [p for path in sorted(CHOPIN.glob("*.mid"))[:args.pieces] for p in answers.phrases(path)]
    calls, continuations = [p.call for p in found], [p.continuation for p in found]
    pools = ", ".join(f"{pool['internal_api']} {pool['num_threads']}" for pool in threadpool_info())
    print(f"{len(found)} phrases of {args.pieces} pieces; BLAS and OpenMP threads by default: {pools}")
    times: dict[str, list[float]] = {"default": [], "one thread": []}
    accuracies: dict[str, set[float]] = {"default": set(), "one thread": set()}
    for _ in range(args.rounds):
        for name, threads in (("default", None), ("one thread", 1)):
            seconds, accuracy = _timed(calls, continuations, threads)
            times[name].append(seconds)
            accuracies[name].add(round(accuracy, 9))
    for name, seconds in times.items():
        print(f"{name:>10}: median {statistics.median(seconds):.2f} s per test "
              f"({', '.join(f'{s:.2f}' for s in seconds)}); accuracy {sorted(accuracies[name])}")
    ratio = statistics.median(times["one thread"]) / statistics.median(times["default"])
    print(f"one thread ÷ default: {ratio:.2f}×; the same accuracy: {accuracies['default'] == accuracies['one thread']}")


if __name__ == "__main__":
    main()
