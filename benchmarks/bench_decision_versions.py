"""The engine's decision, this tree's code against another revision's, in one run.

A change to the decision's Python (sampler, heads, memory, voicing) moves it by a few
tens of microseconds, less than this machine's noise between two runs minutes apart. So
both are measured here, alternating: each run is a fresh process that imports mididuet
from one tree (the other revision checked out in a temporary git worktree) and makes the
decisions of ``bench_daemon.py``'s ``bench_engine_decision`` (solo at 400 BPM, memory
0.9, the shipped model for both), timed as the daemon's stats time them: one sample per
note-on sent, from the decision's start to that note (3,000 after 300), every sample kept.
Which tree runs first alternates from pair to pair. It prints each run's p50 and p99
and, per pair, this tree ÷ the revision.

Run: ``.venv/bin/python benchmarks/bench_decision_versions.py REVISION [--pairs 6]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models" / "chopin.onnx"


def decide(tree: Path, model: Path, tokens: int = 3000, memory: float = 0.9) -> dict[str, float]:
    """In a fresh process: mididuet imported from ``tree``, its engine's decisions timed."""
    package = types.ModuleType("mididuet")
    package.__path__ = [str(tree)]  # mididuet.daemon is tree/daemon, as the editable install maps it
    sys.modules["mididuet"] = package
    from mididuet.daemon.engine.engine import Engine
    from mididuet.daemon.engine.settings import EngineSettings
    from mididuet.daemon.engine.stats import Stats
    from mididuet.daemon.predict.bundle import ModelRunner

    assert Path(sys.modules[Engine.__module__].__file__ or "").is_relative_to(tree)

    class Exact(Stats):  # every sample kept: the daemon's histogram buckets are 4% wide
        def __init__(self) -> None:
            super().__init__()
            self.times: list[int] = []

        def note_sent(self, decision_ns: int, lateness_ns: int) -> None:
            super().note_sent(decision_ns, lateness_ns)
            if self.notes_out > 300:  # the first 300 fill the window and the memory
                self.times.append(decision_ns)

    stats = Exact()
    engine = Engine(ModelRunner(model), EngineSettings(mode="solo", bpm=400.0, seed=1, memory=memory),
                    lambda m: None, 0, stats=stats)
    now, played = 0, 0
    while played < tokens + 300:
        deadline = engine.tick(now)
        now = max(deadline or now + 1, now + 1)
        played = stats.notes_out
    times = np.asarray(stats.times, dtype=np.float64) / 1e6
    return {"p50": float(np.percentile(times, 50)), "p99": float(np.percentile(times, 99))}


def run(tree: Path, model: Path) -> dict[str, float]:
    done = subprocess.run([sys.executable, __file__, "--child", str(tree), "--model", str(model)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the decisions from {tree} failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("revision", nargs="?", help="the git revision to compare with (e.g. HEAD~3)")
    parser.add_argument("--pairs", type=int, default=6, help="alternating runs of each (default 6)")
    parser.add_argument("--model", type=Path, default=MODEL, help="the bundle both decide with")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(decide(args.child.resolve(), args.model)))
        return 0
    if not args.revision:
        parser.error("give the revision to compare with, e.g. HEAD~1")
    if args.pairs < 1:
        parser.error("--pairs must be at least 1")
    if subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", "-q", f"{args.revision}^{{commit}}"],
                      capture_output=True).returncode != 0:
        parser.error(f"{args.revision!r} is not a commit of this repository")
    if not args.model.is_file():
        parser.error(f"{args.model} not found: build it with make model, or pass --model")
    with tempfile.TemporaryDirectory() as tmp:
        other = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(other), args.revision],
                       check=True)
        try:
            ratios = []
            for pair in range(1, args.pairs + 1):
                if pair % 2:
                    before, now = run(other, args.model), run(ROOT, args.model)
                else:
                    now, before = run(ROOT, args.model), run(other, args.model)
                ratios.append((now["p50"] / before["p50"], now["p99"] / before["p99"]))
                print(f"pair {pair}: {args.revision} p50 {before['p50']:.3f} p99 {before['p99']:.3f} ms; "
                      f"this tree p50 {now['p50']:.3f} p99 {now['p99']:.3f} ms; ÷ {ratios[-1][0]:.2f}x, "
                      f"{ratios[-1][1]:.2f}x", flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(other)], check=False)
    print(f"median of {args.pairs} pairs, this tree ÷ {args.revision}: p50 "
          f"{statistics.median(r[0] for r in ratios):.2f}x, p99 {statistics.median(r[1] for r in ratios):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
