"""Train the WaveNet on a corpus, export a verified bundle, evaluate it, write its card."""

from __future__ import annotations

import csv
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from daemon import bundle
from training.corpus import Corpus, read_corpus
from training.dataset import Dataset, build_dataset
from training.evaluate import Metrics, best_baseline, evaluate_all, format_table
from training.progress import progress_bar


@dataclass
class TrainOptions:
    data: Path
    out: Path
    epochs: int = 50
    batch_size: int = 128
    min_count: int = 40
    split: str = "pieces"
    val_fraction: float = 0.2
    reader: str = "mido"
    seed: int = 42
    patience: int = 5
    arch: str = "seed"
    card: Path | None = None
    command: str = ""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load_corpus(data: Path, reader: str) -> Corpus:
    started = time.perf_counter()
    corpus = read_corpus(data, reader, progress=lambda it: progress_bar(it, desc=f"reading ({reader})"))
    log(f"read {len(corpus.pieces)} pieces, {corpus.token_count} tokens from {data} "
        f"in {time.perf_counter() - started:.1f} s")
    return corpus


def run_training(opts: TrainOptions) -> dict[str, Any]:
    """The whole offline pipeline; returns the training facts stored in the bundle."""
    import keras

    from training.export import export_bundle
    from training.model import build_model

    corpus = load_corpus(opts.data, opts.reader)
    ds = build_dataset(corpus.pieces, split=opts.split, val_fraction=opts.val_fraction,
                       min_count=opts.min_count, seed=opts.seed)
    log(f"vocabulary: {len(ds.vocabulary)} tokens (count ≥ {opts.min_count}); "
        f"windows: {len(ds.x_train)} train, {len(ds.x_val)} validation; split by {ds.split}")
    if len(ds.x_train) == 0 or len(ds.x_val) == 0:
        raise ValueError("too little music for 32-token windows on both sides of the split; add pieces")

    keras.utils.set_random_seed(opts.seed)
    model = build_model(opts.arch, len(ds.vocabulary))
    run_dir = opts.out.with_name(opts.out.stem + "-training")
    run_dir.mkdir(parents=True, exist_ok=True)
    history_csv = run_dir / "history.csv"
    callbacks = [
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=opts.patience, restore_best_weights=True),
        keras.callbacks.CSVLogger(str(history_csv)),
    ]
    started = time.perf_counter()
    history = model.fit(
        ds.x_train, ds.y_train,
        validation_data=(ds.x_val, ds.y_val),
        epochs=opts.epochs, batch_size=opts.batch_size, shuffle=True,
        callbacks=callbacks, verbose=1 if sys.stderr.isatty() else 2,
    )
    train_seconds = time.perf_counter() - started
    val_losses = history.history["val_loss"]
    best_epoch = int(np.argmin(val_losses)) + 1
    plot_history(history_csv, run_dir / "curves.png")

    facts: dict[str, Any] = {
        "corpus": str(opts.data.name or opts.data),
        "corpus_sha256": corpus.sha256,
        "pieces": len(corpus.pieces),
        "skipped_files": len(corpus.skipped),
        "reader": opts.reader,
        "split": ds.split,
        "val_fraction": opts.val_fraction,
        "seed": opts.seed,
        "min_count": opts.min_count,
        "vocabulary_size": len(ds.vocabulary),
        "val_pieces": ds.val_pieces,
        "train_windows": len(ds.x_train),
        "val_windows": len(ds.x_val),
        "arch": opts.arch,
        "parameters": int(model.count_params()),
        "epochs_run": len(val_losses),
        "best_epoch": best_epoch,
        "batch_size": opts.batch_size,
        "train_seconds": round(train_seconds, 1),
        "command": opts.command,
    }
    log(f"trained {len(val_losses)} epochs in {train_seconds:.0f} s; best val_loss {min(val_losses):.4f} "
        f"at epoch {best_epoch}")
    check = ds.x_val if len(ds.x_val) else ds.x_train
    verification = export_bundle(model, opts.out, ds.vocabulary, facts, check)
    log(f"exported {opts.out}: onnxruntime matches Keras on {int(verification['windows'])} windows "
        f"(max |Δprob| {verification['max_abs_diff']:.1e}, same argmax {verification['argmax_agreement']:.2%})")
    facts["export_check"] = verification

    rows = evaluate_bundle_on(opts.out, ds)
    facts["metrics"] = {r.name: r.as_dict() for r in rows}
    write_training_facts(opts.out, facts)
    print(format_table(rows))
    if opts.card:
        from training.card import write_card

        write_card(opts.card, opts.out, facts, rows)
        log(f"wrote model card {opts.card}")
    return facts


def evaluate_bundle_on(path: Path, ds: Dataset) -> list[Metrics]:
    """Score a bundle (through onnxruntime, as the daemon runs it) and the baselines."""
    runner = bundle.ModelRunner(path)
    if list(runner.vocabulary) != list(ds.vocabulary):
        raise ValueError(f"{path}: its vocabulary differs from the data set's")
    rows = evaluate_all(runner.query_batch, "model", len(ds.vocabulary), ds.train_sequences, ds.x_val, ds.y_val)
    best = best_baseline(rows)
    log(f"held-out NLL {rows[0].nll:.4f} vs best n-gram ({best.name}) {best.nll:.4f}: "
        f"ratio {rows[0].nll / best.nll:.3f}")
    return rows


def write_training_facts(path: Path, facts: dict[str, Any]) -> None:
    """Replace the bundle's training metadata (weights untouched), then re-check the file."""
    import onnx

    proto = onnx.load(str(path))
    for prop in proto.metadata_props:
        if prop.key == bundle.META_TRAINING:
            prop.value = json.dumps(facts, sort_keys=True)
    onnx.save(proto, str(path))
    bundle.ModelRunner(path)


def plot_history(history_csv: Path, png: Path) -> None:
    """Loss and accuracy per epoch, training beside validation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with history_csv.open() as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    epochs = [int(r["epoch"]) + 1 for r in rows]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("loss", "training"), ("val_loss", "validation (held-out pieces)")):
        ax_loss.plot(epochs, [float(r[key]) for r in rows], marker="o", label=label)
    for key, label in (("sparse_categorical_accuracy", "training"),
                       ("val_sparse_categorical_accuracy", "validation (held-out pieces)")):
        ax_acc.plot(epochs, [float(r[key]) for r in rows], marker="o", label=label)
    ax_loss.set(title="Loss (cross-entropy, nats)", xlabel="epoch")
    ax_acc.set(title="Next-token accuracy", xlabel="epoch")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
