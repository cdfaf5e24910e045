"""Train the WaveNet on a corpus, export a verified bundle, evaluate it, write its card.

Optional stages (each off by default, so the defaults reproduce the seed exactly):
``transpose`` augments the training pieces (:mod:`training.augment`), ``pretrain`` first
trains on a larger collection (the corpus's validation pieces excluded by content hash)
with the corpus's vocabulary, then fine-tunes on the corpus.
"""

from __future__ import annotations

import csv
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mididuet.daemon.music.expression import DEFAULT, Encoding
from mididuet.daemon.predict import bundle

from .augment import augment_pieces
from .corpus import Corpus, read_corpus
from .dataset import (
    PIECE_SPLITS,
    Dataset,
    build_dataset,
    encode_pieces,
    expressions,
    expressive_windows,
    make_sequences,
    make_windows,
)
from .evaluate import Metrics, best_baseline, evaluate_all, format_table, nll_of
from .evaluate_heads import HeadMetrics, evaluate_heads, format_head_table
from .expression import IGNORE
from .loss_weights import HEAD_LOSS_WEIGHT, named_settings, training_weights
from .progress import progress_bar
from .quality import measure_latency
from .smoothing import checked_smoothing
from .temperature import apply_head_temperatures, checked_temperatures


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
    split_seed: int | None = None  # the split's own seed (None: ``seed``), to vary the weights' alone
    patience: int = 5
    arch: str = "seed"
    transpose: int = 0  # augment training pieces by −K…+K semitones
    pretrain: Path | None = None  # a larger collection to train on first
    pretrain_epochs: int = 3
    finetune_lr: float = 3e-4  # Adam's rate after pre-training (pre-training uses the seed's 1e-3)
    card: Path | None = None
    command: str = ""
    expressive: bool = False  # the heads: when, how long, how loud and where (bundle format 2)
    conditioned: bool = True  # the heads see the token they describe
    encoding: Encoding = DEFAULT  # the heads' classes and the features read (an earlier version's, to compare)
    head_weights: dict[str, float] = field(default_factory=dict)  # overrides of the heads' training loss weights
    average_weights: bool = False  # score and keep each epoch's moving average of the weights (about an epoch long)
    head_temperatures: dict[str, float] = field(default_factory=dict)  # baked into the heads before export
    head_smoothing: dict[str, float] = field(default_factory=dict)  # heads trained toward their classes' neighbours


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
    from .model import build_network

    by_pieces = opts.split in PIECE_SPLITS
    if opts.arch != "seed" and not by_pieces:
        # It trains on chunks of whole pieces, which with random windows would hold the
        # validation windows' own tokens.
        raise ValueError(f"--arch {opts.arch} needs --split pieces (or development)")
    if opts.pretrain is not None and not by_pieces:
        raise ValueError("--pretrain needs --split pieces or development (held-out pieces are excluded by content "
                         "hash)")
    if opts.expressive and (not by_pieces or opts.reader != "mido"):
        raise ValueError("--expressive needs --split pieces (or development) and --reader mido (music21 keeps no "
                         "timing)")
    for option, given in (("--head-weight", opts.head_weights), ("--head-temperature", opts.head_temperatures),
                          ("--head-smoothing", opts.head_smoothing)):
        if given and not opts.expressive:
            raise ValueError(f"{option} needs --expressive (only the expressive heads take it)")
    # Resolved once, so a wrong one is refused before the corpus is read.
    head_weights = training_weights(opts.head_weights, opts.encoding) if opts.expressive else None
    temperatures = checked_temperatures(opts.head_temperatures, opts.encoding.heads)
    smoothing = checked_smoothing(opts.head_smoothing, opts.encoding.heads)
    corpus = load_corpus(opts.data, opts.reader)
    ds = build_dataset(corpus.pieces, split=opts.split, val_fraction=opts.val_fraction,
                       min_count=opts.min_count, seed=opts.seed if opts.split_seed is None else opts.split_seed,
                       transpose=opts.transpose, expressive=opts.expressive, encoding=opts.encoding)
    augmented = f", transposed by ±{opts.transpose} semitones" if opts.transpose else ""
    log(f"vocabulary: {len(ds.vocabulary)} tokens (count ≥ {opts.min_count}); "
        f"windows: {len(ds.x_train)} train{augmented}, {len(ds.x_val)} validation; split by {ds.split}")
    if len(ds.x_train) == 0 or len(ds.x_val) == 0:
        raise ValueError("too little music for 32-token windows on both sides of the split; add pieces")

    keras.utils.set_random_seed(opts.seed)
    net = build_network(opts.arch, len(ds.vocabulary), opts.encoding if opts.expressive else None, opts.conditioned,
                        head_weights, smoothing)
    run_dir = opts.out.with_name(opts.out.stem + "-training")
    run_dir.mkdir(parents=True, exist_ok=True)
    history_csv = run_dir / "history.csv"
    started = time.perf_counter()
    pre_facts: dict[str, Any] = {}
    if opts.pretrain is not None:
        pre_facts = pretrain(net, opts, corpus, ds, run_dir / "pretrain-history.csv")
        net.compile(opts.finetune_lr)  # a fresh optimizer at a gentler rate
    else:
        (run_dir / "pretrain-history.csv").unlink(missing_ok=True)  # not this run's
    if net.encoding is not None:
        x_fit, y_fit = expressive_windows(ds.fit_expression or [], net.per_position)
    else:
        x_fit, y_fit = fit_arrays(net.per_position, ds.fit_sequences, ds.x_train, ds.y_train)
    # After pre-training, the weights it ended with compete too: fine-tuning on the corpus
    # alone made every head worse from its first epoch (docs/model-quality.md).
    history, best_epoch = fit_phase(net, x_fit, y_fit, ds, opts, opts.epochs, history_csv,
                                    keep_start=opts.pretrain is not None)
    train_seconds = time.perf_counter() - started
    val_losses = history.history["val_loss"]
    plot_history(history_csv, run_dir / "curves.png")
    if temperatures:
        apply_head_temperatures(net.fit, temperatures)
        log(f"head temperatures baked in: {named_settings(temperatures)}")

    model = net.export()
    held = held_out(net, ds)
    if net.per_position or net.encoding is not None:
        check_last_position(net, model, held)
    facts: dict[str, Any] = {
        "corpus": str(opts.data.name or opts.data),
        "corpus_sha256": corpus.sha256,
        "pieces": len(corpus.pieces),
        "skipped_files": len(corpus.skipped),
        "reader": opts.reader,
        "split": ds.split,
        "val_fraction": opts.val_fraction,
        "seed": opts.seed,
        **({"split_seed": opts.split_seed} if opts.split_seed is not None else {}),
        "min_count": opts.min_count,
        "vocabulary_size": len(ds.vocabulary),
        "val_pieces": ds.val_pieces,
        **({"excluded_pieces": ds.excluded_pieces} if ds.split == "development" else {}),
        "train_windows": len(ds.x_train),
        "val_windows": len(ds.x_val),
        "arch": opts.arch,
        "transpose": opts.transpose,
        "expressive": opts.expressive,
        **({"conditioned": opts.conditioned,
            "head_weights": head_weights,
            "monitor_head_weight": HEAD_LOSS_WEIGHT} if opts.expressive else {}),
        **pre_facts,
        "parameters": int(model.count_params()),
        "epochs_run": len(val_losses),
        "best_epoch": best_epoch,
        "monitor": monitored(net),
        "batch_size": opts.batch_size,
        **({"average_weights": True} if opts.average_weights else {}),
        **({"head_temperatures": temperatures} if temperatures else {}),
        **({"head_smoothing": smoothing} if smoothing else {}),
        "train_seconds": round(train_seconds, 1),
        "command": opts.command,
    }
    kept = f"epoch {best_epoch}" if best_epoch else "the pre-trained weights (no fine-tuning epoch did better)"
    log(f"trained {facts.get('pretrain_epochs_run', 0)} + {len(val_losses)} epochs in {train_seconds:.0f} s; "
        f"kept {kept}")
    verification = export_bundle(model, opts.out, ds.vocabulary, facts, held.windows, held.features, net.encoding)
    log(f"exported {opts.out}: onnxruntime matches Keras on {int(verification['windows'])} windows "
        f"(max |Δprob| {verification['max_abs_diff']:.1e}, same argmax {verification['argmax_agreement']:.2%})")
    facts["export_check"] = verification
    facts["latency_us"] = measure_latency(bundle.ModelRunner(opts.out))
    log(f"onnxruntime, one window: p50 {facts['latency_us']['p50']:.0f} µs, p99 {facts['latency_us']['p99']:.0f} µs")

    rows, head_rows = evaluate_bundle_on(opts.out, ds)
    facts["metrics"] = {r.name: r.as_dict() for r in rows}
    if head_rows:
        facts["head_metrics"] = {r.head: r.as_dict() for r in head_rows}
    write_training_facts(opts.out, facts)
    print(format_table(rows))
    if head_rows:
        print(format_head_table(head_rows))
    if opts.card:
        from .card import write_card

        write_card(opts.card, opts.out, facts, rows, head_rows)
        log(f"wrote model card {opts.card}")
    return facts


def fit_arrays(per_position: bool, sequences: list[np.ndarray], x_windows: np.ndarray,
               y_windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What ``fit`` trains on: next-token windows, or chunks with a target at every position."""
    if per_position:
        return make_sequences(sequences)
    return x_windows, y_windows


@dataclass
class HeldOut:
    """The validation windows as the fit model takes them: the next token after each full
    window (and, with heads, its features and head targets)."""

    inputs: Any  # what ``fit.predict`` takes
    windows: np.ndarray  # [N, 32] ids
    next_tokens: np.ndarray  # [N]
    features: np.ndarray | None = None  # [N, 32, F]
    heads: dict[str, np.ndarray] | None = None  # [N] each, IGNORE where a head says nothing


def held_out(net: Any, ds: Dataset) -> HeldOut:
    if net.encoding is None:
        return HeldOut(ds.x_val, ds.x_val, ds.y_val)
    inputs, targets = expressive_windows(ds.val_expression or [], per_position=False)
    following = inputs["next_tokens"]
    if net.per_position:  # every position is told its own next token, the window's last too
        following = np.concatenate([inputs["tokens"][:, 1:], following[:, None]], axis=1)
    heads = {name: values for name, values in targets.items() if name != "probs"}
    return HeldOut({**inputs, "next_tokens": following}, inputs["tokens"], targets["probs"],
                   inputs["features"], heads)


def last_position(net: Any, outputs: Any) -> dict[str, np.ndarray]:
    """The fit model's outputs at each window's last position, by name."""
    named = outputs if isinstance(outputs, dict) else {"probs": outputs}
    return {name: np.asarray(values)[:, -1] if net.per_position else np.asarray(values)
            for name, values in named.items()}


def monitored(net: Any) -> str:
    """The held-out loss early stopping watches: with heads, the token's plus each head's at
    :data:`HEAD_LOSS_WEIGHT`, whatever training weighed them."""
    return "val_total" if net.encoding is not None else "val_loss"


def fit_phase(net: Any, x: Any, y: Any, ds: Dataset, opts: TrainOptions, epochs: int,
              history_csv: Path, keep_start: bool = False) -> tuple[Any, int]:
    """One ``fit`` with early stopping on the held-out pieces' loss: the next token's, with
    the heads plus each head's at :data:`HEAD_LOSS_WEIGHT` (``val_total``). Returns the history
    and the epoch whose weights were kept; with ``keep_start`` the weights it starts from
    compete too (epoch 0)."""
    import keras

    callbacks: list[Any] = []
    validation = None
    start: float | None = None
    monitor = monitored(net)
    if net.per_position or net.encoding is not None:
        # Keras would score every position of validation chunks (and weigh the heads in);
        # what counts is the next token after a full 32-token window.
        held = held_out(net, ds)
        callbacks.append(held_out_loss(net, held))
        if keep_start:
            start = held_out_logs(net, held)[monitor]
    else:
        validation = (ds.x_val, ds.y_val)
        if keep_start:
            start = float(net.fit.evaluate(ds.x_val, ds.y_val, batch_size=1024, verbose=0)[0])
    if start is not None:
        log(f"before this phase: held-out {monitor} {start:.4f}")
    keep = keep_best(monitor, opts.patience, start)
    callbacks += [keep, keras.callbacks.CSVLogger(str(history_csv))]
    if opts.average_weights:
        average_over(net.fit.optimizer, steps=math.ceil(len(first_input(x)) / opts.batch_size))
        # First, so the held-out loss and early stopping see the average, not the last step.
        # The kept epoch's average is restored after Keras's own end-of-fit EMA assignment.
        callbacks.insert(0, keras.callbacks.SwapEMAWeights(swap_on_epoch=True))
    build_training_state(net.fit, x, y)
    history = net.fit.fit(x, y, validation_data=validation, epochs=epochs, batch_size=opts.batch_size,
                          shuffle=True, callbacks=callbacks, verbose=1 if sys.stderr.isatty() else 2)
    return history, keep.best_epoch


def first_input(x: Any) -> Any:
    """The rows of a fit's inputs (an array, or a dict of them)."""
    return x["tokens"] if isinstance(x, dict) else x


def average_over(optimizer: Any, steps: int) -> None:
    """Make an optimizer not yet built keep an exponential moving average of the weights
    whose horizon (1 / (1 − momentum)) is ``steps``: one epoch, so each epoch's weights
    average out its last steps' noise (docs/model-quality.md, "Averaged weights")."""
    if optimizer.built:
        raise ValueError("the optimizer is already built: average its weights before the first step")
    optimizer.use_ema, optimizer.ema_momentum, optimizer.ema_overwrite_frequency = True, 1 - 1 / max(steps, 1), None


def build_training_state(model: Any, x: Any, y: Any) -> None:
    """Create the optimizer's and the metrics' variables before ``fit``, from two rows.
    Keras's TensorFlow backend otherwise creates them while tracing the training step, and
    TensorFlow then traces the step a second time: half of a one-batch epoch
    (benchmarks/RESULTS.md). The numbers trained are the same."""
    import keras

    rows = keras.tree.map_structure(lambda values: values[:2], (x, y))
    predicted = model(rows[0], training=False)
    model.compute_loss(rows[0], rows[1], predicted)
    model.compute_metrics(rows[0], rows[1], predicted, None)
    model.reset_metrics()
    model.optimizer.build(model.trainable_variables)


def _keep_best() -> type:
    import keras

    class KeepBestCallback(keras.callbacks.Callback):
        """Early stopping on ``monitor`` that restores the best weights seen, those the fit
        started from included when their score is given (``start``). A score that is not a
        number never counts as better; if none ever was, the fit fails with a ValueError."""

        def __init__(self, monitor: str, patience: int, start: float | None = None) -> None:
            super().__init__()
            self.monitor, self.patience = monitor, patience
            self.start = start if start is not None and math.isfinite(start) else None
            self.best, self.best_epoch, self.best_weights, self.wait = float("inf"), 0, None, 0

        def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
            if self.start is not None:
                self.best, self.best_weights = self.start, self.model.get_weights()

        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            value = float((logs or {})[self.monitor])
            if value < self.best:
                self.best, self.best_epoch, self.best_weights, self.wait = value, epoch + 1, self.model.get_weights(), 0
                return
            self.wait += 1
            if self.wait >= self.patience:
                self.model.stop_training = True

        def on_train_end(self, logs: dict[str, float] | None = None) -> None:
            if self.best_weights is None:
                raise ValueError(f"the held-out {self.monitor} was never a number: training diverged; try a "
                                 "lower learning rate")
            self.model.set_weights(self.best_weights)

    return KeepBestCallback


def keep_best(monitor: str, patience: int, start: float | None = None) -> Any:
    """The early-stopping callback (Keras is imported only when training)."""
    return _keep_best()(monitor, patience, start)


def mean_nll(probs: np.ndarray, targets: np.ndarray) -> float:
    """Mean negative log-likelihood of ``targets`` (rows of ``probs``), IGNORE left out."""
    keep = targets != IGNORE
    picked = probs[np.flatnonzero(keep), targets[keep]]
    return nll_of(picked) if len(picked) else float("nan")


def held_out_loss(net: Any, held: HeldOut) -> Any:
    """A Keras callback: ``val_loss`` and accuracy of the last position on validation
    windows (and each head's held-out NLL, ``val_<head>_nll``).

    Listed before EarlyStopping and CSVLogger, which read the same ``logs`` dict.
    """
    import keras

    class HeldOutLoss(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            if logs is None:
                return
            logs.update(held_out_logs(net, held))
            heads = " ".join(f"{name} {logs[f'val_{name}_nll']:.3f}" for name in held.heads or {})
            log(f"epoch {epoch + 1}: held-out val_loss {logs['val_loss']:.4f}, "
                f"top-1 {logs['val_sparse_categorical_accuracy']:.2%}" + (f"; heads' NLL {heads}" if heads else ""))

    return HeldOutLoss()


def held_out_logs(net: Any, held: HeldOut) -> dict[str, float]:
    """The last position's next-token loss and accuracy on the validation windows, each
    head's NLL (``val_<head>_nll``) and, with heads, ``val_total``: the token's loss plus
    each head's at :data:`HEAD_LOSS_WEIGHT` (the same whatever ``--head-weight`` trained with,
    so that a head weighed more in training cannot buy itself the epoch)."""
    outputs = last_position(net, net.fit.predict(held.inputs, batch_size=1024, verbose=0))
    probs, y_val = outputs["probs"], held.next_tokens
    logs = {"val_loss": mean_nll(probs, y_val),
            "val_sparse_categorical_accuracy": float(np.mean(probs.argmax(axis=1) == y_val))}
    for name, targets in (held.heads or {}).items():
        logs[f"val_{name}_nll"] = mean_nll(outputs[name], targets)
    if held.heads:
        logs["val_total"] = logs["val_loss"] + HEAD_LOSS_WEIGHT * sum(logs[f"val_{name}_nll"] for name in held.heads)
    return logs


def left_out(corpus: Corpus, ds: Dataset) -> set[str]:
    """The content hashes of the corpus's pieces that training must not see: the held-out
    pieces and a development split's test pieces."""
    names = {*ds.val_pieces, *ds.excluded_pieces}
    return {p.sha256 for p in corpus.pieces if p.name in names}


def pretrain(net: Any, opts: TrainOptions, corpus: Corpus, ds: Dataset, history_csv: Path) -> dict[str, Any]:
    """Train on the whole collection first, with the corpus's vocabulary; returns its facts.

    The corpus's validation pieces (and a development split's test pieces) are excluded by
    content hash, so a copy of one under another name (or the corpus itself inside the
    collection) cannot leak into training.
    """
    collection = load_corpus(opts.pretrain, opts.reader)  # type: ignore[arg-type]
    held_out = left_out(corpus, ds)
    pieces = [p for p in collection.pieces if p.sha256 not in held_out]
    excluded = len(collection.pieces) - len(pieces)
    if opts.transpose:
        pieces = augment_pieces(pieces, opts.transpose)
    sequences = encode_pieces(pieces, ds.vocabulary)
    kept = sum(len(s) for s in sequences)
    total = sum(len(p.tokens) for p in pieces)
    if net.encoding is not None:
        x, y = expressive_windows(expressions(pieces, ds.vocabulary, net.encoding), net.per_position)
    else:
        x, y = make_sequences(sequences) if net.per_position else make_windows(sequences)
    log(f"pre-training on {len(collection.pieces) - excluded} pieces of {opts.pretrain} "
        f"({excluded} held-out pieces excluded by hash; {kept / max(total, 1):.0%} of tokens in the "
        f"vocabulary): {len(first_input(x))} training rows")
    started = time.perf_counter()
    history, best_epoch = fit_phase(net, x, y, ds, opts, opts.pretrain_epochs, history_csv)
    val_losses = history.history["val_loss"]
    return {
        "pretrain": str(opts.pretrain.name or opts.pretrain),  # type: ignore[union-attr]
        "pretrain_sha256": collection.sha256,
        "pretrain_pieces": len(collection.pieces) - excluded,
        "pretrain_excluded": excluded,
        "pretrain_rows": len(first_input(x)),
        "pretrain_epochs_run": len(val_losses),
        "pretrain_best_epoch": best_epoch,
        "pretrain_best_val_loss": round(float(val_losses[best_epoch - 1]), 4),
        "pretrain_seconds": round(time.perf_counter() - started, 1),
        "finetune_lr": opts.finetune_lr,
    }


def check_last_position(net: Any, export: Any, held: HeldOut) -> None:
    """The exported model must compute what the trained one does: the last position's
    probabilities and, for the token each window is followed by, every head."""
    n = min(512, len(held.windows))
    sample = held.inputs[:n] if not isinstance(held.inputs, dict) else {k: v[:n] for k, v in held.inputs.items()}
    expected = last_position(net, net.fit.predict(sample, batch_size=512, verbose=0))
    given = held.windows[:n] if held.features is None else {"tokens": held.windows[:n], "features": held.features[:n]}
    actual = export.predict(given, batch_size=512, verbose=0)
    actual = actual if isinstance(actual, dict) else {"probs": actual}
    rows = np.arange(n)
    # Of each head, the row of the token that came.
    compared = {"probs": actual["probs"], **{name: np.asarray(actual[name])[rows, held.next_tokens[:n]]
                                             for name in held.heads or {}}}
    from .export import ExportError, largest_differences

    diffs, worst = largest_differences(expected, compared)
    if diffs[worst] > 1e-5:
        raise ExportError(f"the exported model differs from the trained one: max |Δ| {diffs[worst]:.1e} in '{worst}'")


def evaluate_bundle_on(path: Path, ds: Dataset) -> tuple[list[Metrics], list[HeadMetrics]]:
    """Score a bundle (through onnxruntime, as the daemon runs it) and the baselines: the
    token, and each head of a format-2 bundle."""
    runner = bundle.ModelRunner(path)
    if list(runner.vocabulary) != list(ds.vocabulary):
        raise ValueError(f"{path}: its vocabulary differs from the data set's")
    if runner.expressive and ds.val_expression is None:
        raise ValueError(f"{path} has expressive heads: build its data set with expressive=True")
    windows, features, following = ds.x_val, None, ds.y_val
    if runner.expressive:
        inputs, targets = expressive_windows(ds.val_expression or [], per_position=False)
        windows, features, following = inputs["tokens"], inputs["features"], targets["probs"]
    outputs = predict_all(runner, windows, features)
    rows = evaluate_all(outputs["probs"], "model", len(ds.vocabulary), ds.train_sequences, windows, following)
    best = best_baseline(rows)
    log(f"held-out NLL {rows[0].nll:.4f} vs best n-gram ({best.name}) {best.nll:.4f}: "
        f"ratio {rows[0].nll / best.nll:.3f}")
    head_rows: list[HeadMetrics] = []
    if runner.expressive:
        assert runner.info.expression is not None
        chosen = {name: outputs[name][np.arange(len(following)), following] for name in runner.heads}
        head_rows = evaluate_heads(chosen, ds.val_expression or [], ds.train_expression or [], runner.info.expression,
                                   ds.vocabulary)
        for r in head_rows:
            log(f"head {r.head}: held-out NLL {r.nll:.4f} vs best baseline ({r.best_baseline}) "
                f"{r.baselines[r.best_baseline]:.4f}: ratio {r.ratio:.3f}")
    return rows, head_rows


def predict_all(runner: bundle.ModelRunner, windows: np.ndarray, features: np.ndarray | None,
                chunk: int = 1024) -> dict[str, np.ndarray]:
    """Every output of ``runner`` for ``windows``, in chunks (through onnxruntime)."""
    parts = [runner.predict_batch(windows[i:i + chunk], None if features is None else features[i:i + chunk])
             for i in range(0, len(windows), chunk)]
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


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
    heads = [key[4:-4] for key in rows[-1] if key.startswith("val_") and key.endswith("_nll")]
    fig, axes = plt.subplots(1, 3 if heads else 2, figsize=(15 if heads else 10, 4))
    ax_loss, ax_acc = axes[0], axes[1]
    # With heads, Keras's "loss" is the weighted sum of all of them: the token's own is probs_loss.
    train_loss = "probs_loss" if "probs_loss" in rows[-1] else "loss"
    train_acc = "probs_sparse_categorical_accuracy" if heads else "sparse_categorical_accuracy"
    for key, label in ((train_loss, "training"), ("val_loss", "validation (held-out pieces)")):
        ax_loss.plot(epochs, [float(r[key]) for r in rows], marker="o", label=label)
    for key, label in ((train_acc, "training"), ("val_sparse_categorical_accuracy", "validation (held-out pieces)")):
        ax_acc.plot(epochs, [float(r[key]) for r in rows], marker="o", label=label)
    ax_loss.set(title="Next-token loss (cross-entropy, nats)", xlabel="epoch")
    ax_acc.set(title="Next-token accuracy", xlabel="epoch")
    if heads:
        for head in heads:
            axes[2].plot(epochs, [float(r.get(f"val_{head}_nll", "nan")) for r in rows], marker=".", label=head)
        axes[2].set(title="Heads: held-out NLL (nats)", xlabel="epoch")
    for ax in axes:
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
