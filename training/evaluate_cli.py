"""``mididuet-train evaluate``: re-score a bundle on the held-out pieces it records."""

from __future__ import annotations

import sys
from pathlib import Path

from mididuet.daemon.predict import bundle

from .evaluate import format_table
from .evaluate_heads import format_head_table
from .train import evaluate_bundle_on, load_corpus, log


def run_evaluate(model: Path, data: Path, card: Path | None) -> int:
    runner = bundle.ModelRunner(model)  # refuses a damaged or foreign file with a clear message
    facts = runner.info.training
    for key in ("reader", "split", "seed", "val_fraction"):
        if key not in facts:
            raise bundle.BundleError(f"{model}: training metadata lacks '{key}'; cannot rebuild its split")
    corpus = load_corpus(data, facts["reader"])
    if facts.get("corpus_sha256") and facts["corpus_sha256"] != corpus.sha256:
        log("warning: this corpus differs from the one the model was trained on; "
            "the numbers are not comparable with its card")
    from .dataset import build_dataset

    ds = build_dataset(corpus.pieces, split=facts["split"], val_fraction=facts["val_fraction"],
                       seed=facts["seed"], vocabulary=runner.vocabulary, expressive=runner.expressive)
    if facts.get("val_pieces") and sorted(facts["val_pieces"]) != sorted(ds.val_pieces):
        log("warning: the held-out pieces differ from those recorded at training")
    rows, head_rows = evaluate_bundle_on(model, ds)
    print(format_table(rows))
    if head_rows:
        print(format_head_table(head_rows))
    if card:
        from .card import write_card
        from .quality import measure_latency

        # The card's latency is re-measured with the numbers: training runs measure it
        # while the machine is busy with their own process.
        latency = measure_latency(runner)
        log(f"onnxruntime, one window: p50 {latency['p50']:.0f} µs, p99 {latency['p99']:.0f} µs")
        head_metrics = {"head_metrics": {r.head: r.as_dict() for r in head_rows}} if head_rows else {}
        write_card(card, model, {**facts, "metrics": {r.name: r.as_dict() for r in rows}, **head_metrics,
                                 "latency_us": latency}, rows, head_rows)
        log(f"wrote model card {card}")
    sys.stdout.flush()
    return 0
