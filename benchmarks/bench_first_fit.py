"""A phase's first epoch, with the training state built before ``fit`` and without, as ratios.

    .venv/bin/python benchmarks/bench_first_fit.py [--arch wavenet] [--pairs 2]

Keras's TensorFlow backend creates the optimizer's and the metrics' variables while it
traces the training step, and TensorFlow then traces the step again; the trainer builds
them first (``training.train.build_training_state``). Each run is a fresh process that
builds the expressive network (a 120-token vocabulary), fits it for one epoch on 100
random windows (one batch, so the epoch is nearly all tracing) and fits it once more
(traced already). The two ways alternate, ``--pairs`` times; the script checks that both
trained the same numbers (the first epoch's loss and the sum of the weights, seeded).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

RUN = r"""
import json, sys, time
import numpy as np
import keras
from mididuet.daemon.music.expression import DEFAULT
from mididuet.training.model import build_network
from mididuet.training.train import build_training_state

keras.utils.set_random_seed(1)
arch, prebuild = sys.argv[1], sys.argv[2] == "1"
net = build_network(arch, 120, DEFAULT)
rng = np.random.default_rng(0)
shape = (100, 32) if net.per_position else (100,)
x = {"tokens": rng.integers(0, 120, (100, 32)).astype("int32"),
     "features": rng.integers(0, 5, (100, 32, len(DEFAULT.features))).astype("int32"),
     "next_tokens": rng.integers(0, 120, shape).astype("int32")}
y = {"probs": rng.integers(0, 120, shape).astype("int32"),
     **{h: rng.integers(0, DEFAULT.size(h), shape).astype("int32") for h in DEFAULT.heads}}
t0 = time.perf_counter()
if prebuild:
    build_training_state(net.fit, x, y)
history = net.fit.fit(x, y, epochs=1, batch_size=128, verbose=0).history
first = time.perf_counter() - t0
t0 = time.perf_counter()
net.fit.fit(x, y, epochs=1, batch_size=128, verbose=0)
again = time.perf_counter() - t0
print(json.dumps({"first": first, "again": again, "loss": history["loss"][0],
                  "weights": float(sum(abs(w).sum() for w in net.fit.get_weights()))}))
"""


def run(arch: str, prebuild: bool) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", RUN, arch, "1" if prebuild else "0"], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="wavenet", choices=("seed", "wavenet"))
    parser.add_argument("--pairs", type=int, default=2, help="alternating runs of each way (default 2)")
    args = parser.parse_args()
    runs: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    for _ in range(args.pairs):
        for prebuild in (False, True):
            runs[prebuild].append(run(args.arch, prebuild))
    for prebuild, label in ((False, "state built while tracing (Keras's way)"), (True, "state built first")):
        first = statistics.median(r["first"] for r in runs[prebuild])
        again = statistics.median(r["again"] for r in runs[prebuild])
        print(f"{label}: first epoch {first:.1f} s (median of {args.pairs}), an epoch once traced {again:.2f} s")
    ratio = statistics.median(r["first"] for r in runs[True]) / statistics.median(r["first"] for r in runs[False])
    print(f"first epoch, built first ÷ Keras's way: {ratio:.2f}×")
    same = {(r["loss"], r["weights"]) for rs in runs.values() for r in rs}
    print("the same numbers trained both ways" if len(same) == 1 else f"the numbers differ: {sorted(same)}")
    return 0 if len(same) == 1 else 1


if __name__ == "__main__":
    raise SystemExit(main())
