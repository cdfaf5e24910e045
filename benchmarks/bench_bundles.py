"""One prediction through onnxruntime for each of several bundles, interleaved, as ratios.

    .venv/bin/python benchmarks/bench_bundles.py BASELINE.onnx OTHER.onnx [...]

Each query is one 32-token window (and, for format 2, its features), as the daemon makes
it, one after the other for every bundle so the machine's noise falls on all of them.
Prints p50 and p99 per bundle and each against the first. The format-1 WaveNet shipped
before the expressive heads: ``git show deca359:models/chopin.onnx > /tmp/format1.onnx``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from mididuet.daemon.predict.bundle import ModelRunner


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundles", type=Path, nargs="+", help="the first is the baseline")
    parser.add_argument("--queries", type=int, default=5000, help="per bundle (default 5000)")
    args = parser.parse_args()
    runners = [ModelRunner(path) for path in args.bundles]
    windows = [np.arange(r.info.window, dtype=np.int32) % r.info.size for r in runners]
    features = [np.ones((r.info.window, len(r.features)), np.int32) if r.expressive else None for r in runners]
    times: list[list[int]] = [[] for _ in runners]
    for i in range(args.queries + 200):  # the first 200 warm the caches
        for k, runner in enumerate(runners):
            t0 = time.perf_counter_ns()
            runner.predict(windows[k], features[k])
            if i >= 200:
                times[k].append(time.perf_counter_ns() - t0)
    base = [np.percentile(times[0], q) for q in (50, 99)]
    for path, runner, t in zip(args.bundles, runners, times, strict=True):
        p50, p99 = (np.percentile(t, q) for q in (50, 99))
        print(f"{path.name} (format {runner.info.format_version}, {len(runner.heads)} heads): p50 {p50 / 1e6:.3f} ms, "
              f"p99 {p99 / 1e6:.3f} ms; ÷ {args.bundles[0].name}: p50 {p50 / base[0]:.2f}x, p99 {p99 / base[1]:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
