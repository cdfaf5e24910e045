"""Probe behind docs/model-quality.md's note on solos that settle into one interval: how
steady the rhythm of a solo from nothing is, bundle by bundle.

    .venv/bin/python docs/probes/solo_rhythm.py MODEL.onnx [MODEL.onnx ...] [--seeds 10] [--tokens 200]

Each bundle plays ``--seeds`` solos of ``--tokens`` tokens with ``mididuet generate`` at
100 BPM (the daemon's defaults otherwise: top-p 0.95, rhythm temperature 0.7, legato,
memory 0.9), from the default primer, seeds 1, 2, ... For each solo: the share of
inter-onset intervals equal to the one before (1.0: one interval throughout) and the nPVI
of the intervals (Chopin's held-out continuations: about 17). Prints each bundle's mean
and its solos one by one. About a minute per bundle on two cores.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
from pathlib import Path

import mido
import numpy as np

from mididuet.daemon.cli import main as mididuet


def onsets(path: Path) -> list[int]:
    """The ticks at which any note begins in the answer's track."""
    now, found = 0, set()
    for msg in mido.MidiFile(path).tracks[1]:
        now += msg.time
        if msg.type == "note_on" and msg.velocity > 0:
            found.add(now)
    return sorted(found)


def steadiness(intervals: np.ndarray) -> tuple[float, float]:
    """The share of intervals equal to the one before, and the nPVI."""
    same = float(np.mean(intervals[1:] == intervals[:-1]))
    npvi = float(100 * np.mean(np.abs(np.diff(intervals)) / ((intervals[1:] + intervals[:-1]) / 2)))
    return same, npvi


def solo(model: Path, seed: int, tokens: int, out: Path) -> np.ndarray:
    with contextlib.redirect_stdout(io.StringIO()):
        code = mididuet(["generate", "--model", str(model), "--tokens", str(tokens), "--bpm", "100",
                         "--seed", str(seed), "--out", str(out)])
    if code != 0:
        raise SystemExit(f"mididuet generate failed for {model} (exit {code})")
    return np.diff(onsets(out)).astype(float)


def run() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", type=Path, nargs="+", help="bundles to compare")
    parser.add_argument("--seeds", type=int, default=10, help="solos per bundle (default 10)")
    parser.add_argument("--tokens", type=int, default=200, help="tokens per solo (default 200)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            figures = [steadiness(solo(model, seed, args.tokens, Path(tmp) / "solo.mid"))
                       for seed in range(1, args.seeds + 1)]
            same, npvi = np.mean(figures, axis=0)
            print(f"{model}: intervals equal to the one before {same:.2f}, nPVI {npvi:.1f} (mean of {args.seeds})")
            print("  by seed: " + ", ".join(f"{s:.2f} ({n:.0f})" for s, n in figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(run())
