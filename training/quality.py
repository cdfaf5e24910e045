"""``mididuet-train compare``: one table row per trained configuration, from the bundles.

Every bundle carries its training facts (command, epochs, minutes, parameters, held-out
metrics beside the n-gram baselines on the same split). This module turns them into the
table of ``docs/model-quality.md`` and re-measures onnxruntime's time per prediction for
all bundles in the same run, so the latency column compares like with like on a shared
machine.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mididuet.daemon.predict import bundle

from .evaluate import NGRAM_ORDERS, ngram_name
from .loss_weights import named_settings, weighed_otherwise

LATENCY_QUERIES = 2000
LATENCY_WARMUP = 100


@dataclass
class Row:
    name: str
    metrics: dict[str, float]
    best_ngram_nll: float
    epochs: str = "—"
    minutes: str = "—"
    parameters: str = "—"
    p99_ms: str = "—"
    command: str = ""


def configuration_name(facts: dict[str, Any]) -> str:
    """``wavenet + transpose ±3 + pretrain (midis)``: what a bundle's training did."""
    parts = [str(facts.get("arch", "seed"))]
    if facts.get("transpose"):
        parts.append(f"transpose ±{facts['transpose']}")
    if facts.get("pretrain"):
        parts.append(f"pretrain ({facts['pretrain']}, {facts.get('pretrain_pieces')} pieces)")
    if other := weighed_otherwise(facts):
        parts.append(f"heads weighed {other}")
    if smoothing := facts.get("head_smoothing"):
        parts.append(f"smoothed {named_settings(smoothing)}")
    return " + ".join(parts)


def measure_latency(runner: bundle.ModelRunner, count: int = LATENCY_QUERIES, seed: int = 0) -> dict[str, float]:
    """onnxruntime time of one (1, 32) prediction through the daemon's runner, in µs.

    Blocks for about ``count`` × 0.2 ms. The ids are random: the work does not depend on them.
    """
    rng = np.random.default_rng(seed)
    windows = rng.integers(0, runner.info.size, size=(256, runner.info.window), dtype=np.int32)
    for i in range(LATENCY_WARMUP):
        runner.query(windows[i % len(windows)])
    times = np.empty(count)
    for i in range(count):
        window = windows[i % len(windows)]
        started = time.perf_counter_ns()
        runner.query(window)
        times[i] = time.perf_counter_ns() - started
    return {"p50": round(float(np.percentile(times, 50)) / 1e3, 1),
            "p99": round(float(np.percentile(times, 99)) / 1e3, 1), "queries": count}


def epochs_text(facts: dict[str, Any]) -> str:
    """``8`` or, after pre-training, ``3 + 8`` (pre-training + fine-tuning epochs run)."""
    if facts.get("pretrain_epochs_run"):
        return f"{facts['pretrain_epochs_run']} + {facts.get('epochs_run')}"
    return str(facts.get("epochs_run"))


def model_row(facts: dict[str, Any], p99_us: float | None) -> Row:
    metrics = facts["metrics"]
    best = min(v["nll"] for k, v in metrics.items() if k.endswith("gram"))
    return Row(
        name=configuration_name(facts), metrics=metrics["model"], best_ngram_nll=best,
        epochs=epochs_text(facts), minutes=f"{facts.get('train_seconds', 0) / 60:.1f}",
        parameters=f"{facts.get('parameters', 0):,}",
        p99_ms="—" if p99_us is None else f"{p99_us / 1000:.3f}", command=str(facts.get("command", "")),
    )


def baseline_rows(facts: dict[str, Any]) -> list[Row]:
    metrics = facts["metrics"]
    best = min(v["nll"] for k, v in metrics.items() if k.endswith("gram"))
    names = [ngram_name(order) for order in NGRAM_ORDERS]
    return [Row(name=f"{k} (baseline)", metrics=metrics[k], best_ngram_nll=best)
            for k in names if k in metrics]


def format_rows(rows: Sequence[Row], with_commands: bool = True) -> str:
    """The Markdown quality table."""
    header = ("| configuration | held-out NLL | perplexity | top-1 | top-5 | NLL ÷ best n-gram | epochs "
              "| training min | parameters | onnxruntime p99 (ms) |")
    lines = [header, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        m = r.metrics
        lines.append(f"| {r.name} | {m['nll']:.4f} | {m['perplexity']:.2f} | {m['top1']:.2%} | {m['top5']:.2%} "
                     f"| {m['nll'] / r.best_ngram_nll:.3f} | {r.epochs} | {r.minutes} | {r.parameters} "
                     f"| {r.p99_ms} |")
    if with_commands:
        lines.append("")
        lines += [f"- {r.name}: `{r.command}`" for r in rows if r.command]
        if any(not r.command for r in rows):
            lines.append("- baselines: trained by `mididuet-train evaluate` (and every training run) on the same "
                         "training pieces and vocabulary")
    return "\n".join(lines)


def compare(models: Sequence[Path], measure: bool = True) -> str:
    """The table for ``models`` (same corpus and split), baselines last; raises BundleError."""
    rows: list[Row] = []
    splits = set()
    last: dict[str, Any] = {}
    for path in models:
        runner = bundle.ModelRunner(path)
        facts = runner.info.training
        if "metrics" not in facts:
            raise bundle.BundleError(f"{path}: no held-out metrics in its training facts")
        splits.add((facts.get("corpus_sha256"), facts.get("seed"), facts.get("val_fraction"),
                    tuple(sorted(facts.get("val_pieces") or ()))))
        p99 = measure_latency(runner)["p99"] if measure else facts.get("latency_us", {}).get("p99")
        rows.append(model_row(facts, p99))
        last = facts
    if len(splits) > 1:
        raise ValueError("these bundles were not evaluated on the same corpus and held-out pieces")
    return format_rows([*rows, *baseline_rows(last)])
