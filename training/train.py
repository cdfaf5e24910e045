"""Train the WaveNet on a corpus, export a verified bundle, evaluate it, write its card.

Optional stages (each off by default, so the defaults reproduce the seed exactly):
``transpose`` augments the training pieces (:mod:`training.augment`), ``pretrain`` first
trains on a larger collection (the corpus's validation pieces excluded by content hash)
with the corpus's vocabulary, then fine-tunes on the corpus.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mididuet.daemon.predict import bundle

from .augment import augment_pieces
from .corpus import Corpus, read_corpus
from .dataset import Dataset, build_dataset, encode_pieces, make_sequences, make_windows
from .evaluate import Metrics, best_baseline, evaluate_all, format_table
from .progress import progress_bar
from .quality import measure_latency


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
    transpose: int = 0  # augment training pieces by −K…+K semitones
    pretrain: Path | None = None  # a larger collection to train on first
    pretrain_epochs: int = 3
    finetune_lr: float = 3e-4  # Adam's rate after pre-training (pre-training uses the seed's 1e-3)
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

    from .export import export_bundle
    from .model import build_network, compile_model

    if opts.arch != "seed" and opts.split != "pieces":
        # It trains on chunks of whole pieces, which with random windows would hold the
        # validation windows' own tokens.
        raise ValueError(f"--arch {opts.arch} needs --split pieces")
    if opts.pretrain is not None and opts.split != "pieces":
        raise ValueError("--pretrain needs --split pieces (held-out pieces are excluded by content hash)")
    corpus = load_corpus(opts.data, opts.reader)
    ds = build_dataset(corpus.pieces, split=opts.split, val_fraction=opts.val_fraction,
                       min_count=opts.min_count, seed=opts.seed, transpose=opts.transpose)
    augmented = f", transposed by ±{opts.transpose} semitones" if opts.transpose else ""
    log(f"vocabulary: {len(ds.vocabulary)} tokens (count ≥ {opts.min_count}); "
        f"windows: {len(ds.x_train)} train{augmented}, {len(ds.x_val)} validation; split by {ds.split}")
    if len(ds.x_train) == 0 or len(ds.x_val) == 0:
        raise ValueError("too little music for 32-token windows on both sides of the split; add pieces")

    keras.utils.set_random_seed(opts.seed)
    net = build_network(opts.arch, len(ds.vocabulary))
    run_dir = opts.out.with_name(opts.out.stem + "-training")
    run_dir.mkdir(parents=True, exist_ok=True)
    history_csv = run_dir / "history.csv"
    started = time.perf_counter()
    pre_facts: dict[str, Any] = {}
    if opts.pretrain is not None:
        pre_facts = pretrain(net, opts, corpus, ds, run_dir / "pretrain-history.csv")
        compile_model(net.fit, opts.finetune_lr)  # a fresh optimizer at a gentler rate
    else:
        (run_dir / "pretrain-history.csv").unlink(missing_ok=True)  # not this run's
    x_fit, y_fit = fit_arrays(net.per_position, ds.fit_sequences, ds.x_train, ds.y_train)
    history = fit_phase(net, x_fit, y_fit, ds, opts, opts.epochs, history_csv)
    train_seconds = time.perf_counter() - started
    val_losses = history.history["val_loss"]
    best_epoch = int(np.argmin(val_losses)) + 1
    plot_history(history_csv, run_dir / "curves.png")

    model = net.export()
    if net.per_position:
        check_last_position(net.fit, model, ds.x_val)
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
        "transpose": opts.transpose,
        **pre_facts,
        "parameters": int(model.count_params()),
        "epochs_run": len(val_losses),
        "best_epoch": best_epoch,
        "batch_size": opts.batch_size,
        "train_seconds": round(train_seconds, 1),
        "command": opts.command,
    }
    log(f"trained {facts.get('pretrain_epochs_run', 0)} + {len(val_losses)} epochs in {train_seconds:.0f} s; "
        f"best val_loss {min(val_losses):.4f} at epoch {best_epoch}")
    verification = export_bundle(model, opts.out, ds.vocabulary, facts, ds.x_val)
    log(f"exported {opts.out}: onnxruntime matches Keras on {int(verification['windows'])} windows "
        f"(max |Δprob| {verification['max_abs_diff']:.1e}, same argmax {verification['argmax_agreement']:.2%})")
    facts["export_check"] = verification
    facts["latency_us"] = measure_latency(bundle.ModelRunner(opts.out))
    log(f"onnxruntime, one window: p50 {facts['latency_us']['p50']:.0f} µs, p99 {facts['latency_us']['p99']:.0f} µs")

    rows = evaluate_bundle_on(opts.out, ds)
    facts["metrics"] = {r.name: r.as_dict() for r in rows}
    write_training_facts(opts.out, facts)
    print(format_table(rows))
    if opts.card:
        from .card import write_card

        write_card(opts.card, opts.out, facts, rows)
        log(f"wrote model card {opts.card}")
    return facts


def fit_arrays(per_position: bool, sequences: list[np.ndarray], x_windows: np.ndarray,
               y_windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What ``fit`` trains on: next-token windows, or chunks with a target at every position."""
    if per_position:
        return make_sequences(sequences)
    return x_windows, y_windows


def fit_phase(net: Any, x: np.ndarray, y: np.ndarray, ds: Dataset, opts: TrainOptions, epochs: int,
              history_csv: Path) -> Any:
    """One ``fit`` with early stopping on the held-out pieces' next-token loss."""
    import keras

    callbacks: list[Any] = []
    validation = None
    if net.per_position:
        # Keras would score every position of validation chunks; what counts (and what the
        # seed's runs monitor) is the next token after a full 32-token window.
        callbacks.append(held_out_loss(ds.x_val, ds.y_val))
    else:
        validation = (ds.x_val, ds.y_val)
    callbacks += [
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=opts.patience, restore_best_weights=True),
        keras.callbacks.CSVLogger(str(history_csv)),
    ]
    return net.fit.fit(x, y, validation_data=validation, epochs=epochs, batch_size=opts.batch_size,
                       shuffle=True, callbacks=callbacks, verbose=1 if sys.stderr.isatty() else 2)


def held_out_loss(x_val: np.ndarray, y_val: np.ndarray) -> Any:
    """A Keras callback: ``val_loss`` and accuracy of the last position on validation windows.

    Listed before EarlyStopping and CSVLogger, which read the same ``logs`` dict.
    """
    import keras

    class HeldOutLoss(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            probs = self.model.predict(x_val, batch_size=1024, verbose=0)[:, -1, :]
            picked = probs[np.arange(len(y_val)), y_val]
            if logs is not None:
                logs["val_loss"] = float(-np.mean(np.log(np.maximum(picked, 1e-12))))
                logs["val_sparse_categorical_accuracy"] = float(np.mean(probs.argmax(axis=1) == y_val))
                log(f"epoch {epoch + 1}: held-out val_loss {logs['val_loss']:.4f}, "
                    f"top-1 {logs['val_sparse_categorical_accuracy']:.2%}")

    return HeldOutLoss()


def pretrain(net: Any, opts: TrainOptions, corpus: Corpus, ds: Dataset, history_csv: Path) -> dict[str, Any]:
    """Train on the whole collection first, with the corpus's vocabulary; returns its facts.

    The corpus's validation pieces are excluded by content hash, so a copy of one under
    another name (or the corpus itself inside the collection) cannot leak into training.
    """
    collection = load_corpus(opts.pretrain, opts.reader)  # type: ignore[arg-type]
    held_out = {p.sha256 for p in corpus.pieces if p.name in set(ds.val_pieces)}
    pieces = [p for p in collection.pieces if p.sha256 not in held_out]
    excluded = len(collection.pieces) - len(pieces)
    if opts.transpose:
        pieces = augment_pieces(pieces, opts.transpose)
    sequences = encode_pieces(pieces, ds.vocabulary)
    kept = sum(len(s) for s in sequences)
    total = sum(len(p.tokens) for p in pieces)
    x, y = make_sequences(sequences) if net.per_position else make_windows(sequences)
    log(f"pre-training on {len(collection.pieces) - excluded} pieces of {opts.pretrain} "
        f"({excluded} held-out pieces excluded by hash; {kept / max(total, 1):.0%} of tokens in the "
        f"vocabulary): {len(x)} training rows")
    started = time.perf_counter()
    history = fit_phase(net, x, y, ds, opts, opts.pretrain_epochs, history_csv)
    val_losses = history.history["val_loss"]
    return {
        "pretrain": str(opts.pretrain.name or opts.pretrain),  # type: ignore[union-attr]
        "pretrain_sha256": collection.sha256,
        "pretrain_pieces": len(collection.pieces) - excluded,
        "pretrain_excluded": excluded,
        "pretrain_rows": len(x),
        "pretrain_epochs_run": len(val_losses),
        "pretrain_best_val_loss": round(float(min(val_losses)), 4),
        "pretrain_seconds": round(time.perf_counter() - started, 1),
        "finetune_lr": opts.finetune_lr,
    }


def check_last_position(fit: Any, export: Any, windows: np.ndarray) -> None:
    """The exported (last-position) model must compute what the trained one does."""
    sample = windows[:512]
    expected = np.asarray(fit.predict(sample, batch_size=512, verbose=0))[:, -1, :]
    actual = np.asarray(export.predict(sample, batch_size=512, verbose=0))
    diff = float(np.max(np.abs(expected - actual)))
    if diff > 1e-5:
        from .export import ExportError

        raise ExportError(f"the last-position model differs from the trained one: max |Δprob| {diff:.1e}")


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
    """Loss and accuracy per epoch, training beside validation (pre-training epochs first)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pre_csv = history_csv.with_name("pretrain-history.csv")
    pre_rows = _read_history(pre_csv) if pre_csv.is_file() else []
    rows = pre_rows + _read_history(history_csv)
    if not rows:
        return
    epochs = list(range(1, len(rows) + 1))
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("loss", "training"), ("val_loss", "validation (held-out pieces)")):
        ax_loss.plot(epochs, [float(r[key]) for r in rows], marker="o", label=label)
    for key, label in (("sparse_categorical_accuracy", "training"),
                       ("val_sparse_categorical_accuracy", "validation (held-out pieces)")):
        ax_acc.plot(epochs, [float(r[key]) for r in rows], marker="o", label=label)
    ax_loss.set(title="Loss (cross-entropy, nats)", xlabel="epoch")
    ax_acc.set(title="Next-token accuracy", xlabel="epoch")
    for ax in (ax_loss, ax_acc):
        if pre_rows:
            ax.axvline(len(pre_rows) + 0.5, color="grey", linestyle="--", label="pre-training | fine-tuning")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


def _read_history(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))
