"""``mididuet-train evaluate``: score a bundle on held-out music, windowed and as the daemon
predicts (streamed from each piece's start, with its session memory).

Two sources of music: the held-out pieces of the bundle's own split (rebuilt from its
metadata), or, with ``unseen``, every file under ``--data`` (a corpus outside the split:
another composer, your own files), the baselines then trained on the bundle's training
pieces of ``--train-data``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from mididuet.daemon.engine.settings import DEFAULT_MEMORY
from mididuet.daemon.music.expression import DEFAULT, FEATURES
from mididuet.daemon.predict import bundle

from .evaluate import format_table
from .evaluate_heads import TEMPERATURE_TEXT, format_head_table, format_temperature_table
from .expression import Expression
from .streaming import format_streamed, stream
from .train import evaluate_bundle_on, load_corpus, log


def _dataset(runner: bundle.ModelRunner, data: Path) -> Any:
    from .dataset import build_dataset, recorded_split_seed

    facts = runner.info.training
    for key in ("reader", "split", "seed", "val_fraction"):
        if key not in facts:
            raise bundle.BundleError(f"{runner.path}: training metadata lacks '{key}'; cannot rebuild its split")
    corpus = load_corpus(data, facts["reader"])
    if facts.get("corpus_sha256") and facts["corpus_sha256"] != corpus.sha256:
        log("warning: this corpus differs from the one the model was trained on; "
            "the numbers are not comparable with its card")
    ds = build_dataset(corpus.pieces, split=facts["split"], val_fraction=facts["val_fraction"],
                       seed=recorded_split_seed(facts), vocabulary=runner.vocabulary,
                       expressive=runner.expressive,
                       encoding=runner.info.expression or DEFAULT)
    if facts.get("val_pieces") and sorted(facts["val_pieces"]) != sorted(ds.val_pieces):
        log("warning: the held-out pieces differ from those recorded at training")
    return ds


def _plain(sequences: list[np.ndarray]) -> list[Expression]:
    """Token sequences as :class:`Expression`s without features (a format-1 bundle's)."""
    return [Expression(ids, np.zeros((len(ids), len(FEATURES)), np.int32), {}) for ids in sequences]


def run_evaluate(model: Path, data: Path, card: Path | None, memory: float = DEFAULT_MEMORY, unseen: bool = False,
                 as_json: bool = False, train_data: Path | None = None) -> int:
    runner = bundle.ModelRunner(model)  # refuses a damaged or foreign file with a clear message
    report: dict[str, Any] = {"model": str(model), "memory_weight": memory}
    if unseen:
        from .dataset import encode_pieces, expressions

        ds = _dataset(runner, train_data or data)  # only for the baselines' training pieces
        pieces = load_corpus(data, runner.info.training.get("reader", "mido")).pieces
        music = expressions(pieces, runner.vocabulary, runner.info.expression) if runner.info.expression else \
            _plain(encode_pieces(pieces, runner.vocabulary))
        report["mode"] = f"unseen: every file under {data}"
        rows, head_rows = [], []
    else:
        ds = _dataset(runner, data)
        music = ds.val_expression if runner.expressive else _plain(ds.val_sequences)
        report["mode"] = "held-out pieces of the bundle's split"
        rows, head_rows = evaluate_bundle_on(model, ds)
    music = [p for p in music if len(p)]
    streamed = stream(runner, music, memory, ds.train_sequences, full_window_only=True)
    everything = stream(runner, music, memory, full_window_only=False)
    report |= {"pieces": len(music), "predictions": streamed["tokens"][0].targets,
               "predictions_all_tokens": everything["tokens"][0].targets,
               "streamed": {k: [r.as_dict() for r in v] for k, v in streamed.items()},
               "streamed_all_tokens": {k: [r.as_dict() for r in v] for k, v in everything.items()},
               "windowed": {r.name: r.as_dict() for r in rows},
               "windowed_heads": {r.head: r.as_dict() for r in head_rows}}
    if as_json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        if rows:
            print(format_table(rows))
        if head_rows:
            print(f"\n{format_head_table(head_rows)}")
            print(f"\n{TEMPERATURE_TEXT}\n\n{format_temperature_table(head_rows)}")
        print(f"\nAs the daemon predicts: {len(music)} pieces streamed from their start, the memory at weight "
              f"{memory:g}; scored after a full window ({streamed['tokens'][0].targets} tokens):\n")
        print(format_streamed(streamed))
    if card:
        from .card import write_card
        from .quality import measure_latency

        # The card's latency is re-measured with the numbers: training runs measure it
        # while the machine is busy with their own process.
        latency = measure_latency(runner)
        log(f"onnxruntime, one window: p50 {latency['p50']:.0f} µs, p99 {latency['p99']:.0f} µs")
        head_metrics = {"head_metrics": {r.head: r.as_dict() for r in head_rows}} if head_rows else {}
        facts = {**runner.info.training, "metrics": {r.name: r.as_dict() for r in rows}, **head_metrics,
                 "latency_us": latency, "streamed": report["streamed"], "memory_weight": memory}
        write_card(card, model, facts, rows, head_rows)
        log(f"wrote model card {card}")
    sys.stdout.flush()
    return 0
