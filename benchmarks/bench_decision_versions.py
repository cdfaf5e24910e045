"""The engine's decision, this tree's code against another revision's, in one run.

A change to the decision's Python (sampler, heads, memory, voicing) moves it by a few
tens of microseconds, less than this machine's noise between two runs minutes apart. So
both are measured here, alternating: each run is a fresh process that imports mididuet
from one tree (the other revision checked out in a temporary git worktree) and makes the
decisions of ``bench_daemon.py``'s ``bench_engine_decision`` (solo at 400 BPM, memory
0.9, the shipped model for both), timed as the daemon's stats time them: one sample per
note-on sent, from the decision's start to that note (3,000 after 300), every sample kept.
The revision's own code must have ``bench_daemon.py``'s imports (this round's layout).
Which tree runs first alternates from pair to pair. It prints each run's p50 and p99
and, per pair, this tree ÷ the revision.

Run: ``.venv/bin/python benchmarks/bench_decision_versions.py REVISION [--pairs 6]``; with
``--revision-model`` the revision decides with its own shipped model (a new model and the
code that reads it, against the old pair).
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

from machine import describe  # benchmarks/, the script's own directory

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models" / "chopin.onnx"


def decide(tree: Path, model: Path) -> dict[str, float]:
    """In a fresh process: mididuet imported from ``tree``, its engine's decisions timed by
    ``bench_daemon.bench_engine_decision`` at the default memory."""
    package = types.ModuleType("mididuet")
    package.__path__ = [str(tree)]  # mididuet.daemon is tree/daemon, as the editable install maps it
    sys.modules["mididuet"] = package
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bench_daemon

    figures = bench_daemon.bench_engine_decision(model, bench_daemon.DEFAULT_MEMORY)
    assert Path(sys.modules["mididuet.daemon.engine.engine"].__file__ or "").is_relative_to(tree)
    return figures


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
    parser.add_argument("--model", type=Path, default=MODEL,
                        help="the bundle this tree decides with, and the revision too unless --revision-model")
    parser.add_argument("--revision-model", action="store_true",
                        help="the revision decides with its own models/chopin.onnx (a change of model and code "
                        "together: the revision's code may not read this tree's bundle)")
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
    print(f"machine: {describe()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        other = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(other), args.revision],
                       check=True)
        their_model = other / "models" / "chopin.onnx" if args.revision_model else args.model
        try:
            ratios, tails = [], []
            for pair in range(1, args.pairs + 1):
                if pair % 2:
                    before, now = run(other, their_model), run(ROOT, args.model)
                else:
                    now, before = run(ROOT, args.model), run(other, their_model)
                ratios.append((now["p50"] / before["p50"], now["p99"] / before["p99"]))
                tails.append((before["p99"], now["p99"]))
                print(f"pair {pair}: {args.revision} p50 {before['p50']:.3f} p99 {before['p99']:.3f} ms; "
                      f"this tree p50 {now['p50']:.3f} p99 {now['p99']:.3f} ms; ÷ {ratios[-1][0]:.2f}x, "
                      f"{ratios[-1][1]:.2f}x", flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(other)], check=False)
    print(f"median of {args.pairs} pairs, this tree ÷ {args.revision}: p50 "
          f"{statistics.median(r[0] for r in ratios):.2f}x, p99 {statistics.median(r[1] for r in ratios):.2f}x; "
          f"p99 range {args.revision} {min(t[0] for t in tails):.3f}–{max(t[0] for t in tails):.3f} ms, "
          f"this tree {min(t[1] for t in tails):.3f}–{max(t[1] for t in tails):.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
