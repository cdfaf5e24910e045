"""Probes behind docs/model-quality.md's "What still sounds" and "Why the velocity misses
its target": what the length and the velocity can be predicted from, apart from the network.

    .venv/bin/python docs/probes/heads.py [--model models/chopin.onnx] [--data DIR]

Prints, on the model's held-out pieces (its own split and encoding):

1. **trees**: gradient-boosted trees (scikit-learn) given the last 8 window tokens'
   features, then more: for the length, the sounding ages at those 8 onsets (how long the
   oldest token still sounding had sounded; how many sounded); for the velocity, the
   token's pitch and chord size, then the metric position read from the score (which the
   daemon cannot know), then instead the token's own seven other classes, true ones, as if
   they were drawn before the velocity (Notochord's order of sub-events), then the last 8
   tokens' exact velocities against the running level at the token (the window's classes
   are each against its own token's level), the token's own register (lowest and highest
   pitch, notes), and both. Held-out NLL in nats.
2. **merged**: the velocity's classes near 0 merged (−5/−2 and 2/5 into one each), the
   model's probabilities summed and the n-gram baselines recounted: the ratio again.
3. **memory**: each rhythm and dynamics head with the session memory mixed in at 0.9, the
   model's and its best n-gram's alike (``mididuet-train evaluate`` mixes the model only).

Takes a few minutes on two cores.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mididuet.daemon.music.expression import HEADS, SOUNDING_LOOKBACK, Encoding, running_median
from mididuet.daemon.music.tokens import is_chord, parse_note_name, token_pitch_classes
from mididuet.daemon.predict.bundle import WINDOW, ModelRunner
from mididuet.daemon.predict.memory import NGramMemory
from mididuet.training.corpus import default_data_dir, read_corpus
from mididuet.training.dataset import Dataset, build_dataset, expressive_windows
from mididuet.training.evaluate import ngram_name
from mididuet.training.evaluate_heads import BASELINE_ORDERS, baseline, evaluate_heads, known_history
from mididuet.training.expression import EPSILON, IGNORE, Expression
from mididuet.training.streaming import stream
from mididuet.training.train import predict_all

HISTORY_TOKENS = 8
MERGED = [[0], [1], [2], [3], [4, 5], [6], [7, 8], [9], [10], [11], [12]]  # velocity classes, near 0 merged
WEIGHT = 0.9


def nll(probs: np.ndarray, targets: np.ndarray) -> float:
    return float(-np.mean(np.log(np.maximum(probs[np.arange(len(targets)), targets], 1e-12))))


def tree_rows(ds: Dataset, pieces: Sequence, expressions: Sequence[Expression], head: str,
              first: int, history: int) -> tuple[np.ndarray, np.ndarray]:
    """Per target: the last 8 tokens' eight classes, the token's pitch and size, the sounding
    ages (count, oldest, newest, in pulses) at the last 8 onsets, the score's beat phase,
    the token's own classes of the other heads, the last 8 tokens' loudest velocities
    against the running level (of ``history`` tokens) at the token, the token's lowest and
    highest pitch and how many notes."""
    ids = {t: i for i, t in enumerate(ds.vocabulary)}
    rows, targets = [], []
    for piece, e in zip(pieces, expressions, strict=True):
        kept = [r for r in piece.records if r.token in ids]
        onsets = np.array([r.onset for r in kept])
        lengths = np.array([r.length for r in kept])
        velocities = [float(r.velocity) for r in kept]
        iois = [0.0, *np.diff(onsets)]
        sounding = []
        for i in range(len(kept)):
            pulse = (running_median(iois[1:i], i - 1) if i >= 2 else None) or 1.0
            alive = [onsets[i] - onsets[k] for k in range(max(0, i - SOUNDING_LOOKBACK), i)
                     if onsets[k] + lengths[k] > onsets[i] + EPSILON]
            sounding.append([len(alive), max(alive, default=0.0) / pulse, min(alive, default=0.0) / pulse])
        for j in range(first, len(e)):
            if e.targets[head][j] == IGNORE:
                continue
            # The eight classes every version reads (not version 3's sounding feature).
            before = [e.features[j - k, :len(HEADS)] if j >= k else np.zeros(len(HEADS))
                      for k in range(1, HISTORY_TOKENS + 1)]
            token = kept[j].token
            chord = is_chord(token)
            sizes = [int(chord), len(token_pitch_classes(token)), -1 if chord else parse_note_name(token)]
            ages_before = [sounding[j - k] if j >= k else [0, 0, 0] for k in range(1, HISTORY_TOKENS + 1)]
            phase = [kept[j].onset % span for span in (0.5, 1, 2, 4)]
            # The token's own other classes, as if drawn before this head (IGNORE as it is).
            own = [int(e.targets[other][j]) for other in HEADS if other != head]
            # The last 8 tokens' exact loudest velocities against the level now (the window's
            # classes are each against its own token's level, on a coarse grid), and the
            # token's own register: its lowest and highest pitch and how many notes.
            level = running_median(velocities, j, history) or 64.0
            loud = [velocities[j - k] - level if j >= k else 0.0 for k in range(1, HISTORY_TOKENS + 1)]
            register = [kept[j].lowest, kept[j].highest, kept[j].notes]
            # The last 8 tokens' lengths as known when the token is decided (at the onset of
            # the one before it), in log pulses, NaN while still sounding; and those still
            # sounding, how long they have sounded by then (a lower bound on their length).
            # (k = 1 is the last token itself, which always still sounds at its own onset: a
            # constant column, so 7 tokens inform; version 5's feature gives the 8 before it.)
            pulse = (running_median(iois[1:j], j - 1) if j >= 2 else None) or 1.0
            now = onsets[j - 1] if j >= 1 else onsets[j]
            known, alive = [], []
            for k in range(1, HISTORY_TOKENS + 1):
                ended = j >= k and onsets[j - k] + lengths[j - k] <= now + EPSILON
                known.append(np.log2(max(lengths[j - k], EPSILON) / pulse) if ended else np.nan)
                alive.append(np.log2(max(now - onsets[j - k], EPSILON) / pulse) if j >= k and not ended else np.nan)
            rows.append([*np.concatenate(before), *sizes, *np.concatenate(ages_before), *phase, *own, *loud,
                         *register, *known, *alive])
            targets.append(int(e.targets[head][j]))
    return np.asarray(rows, dtype=float), np.asarray(targets)


def trees(ds: Dataset, train: Sequence, val: Sequence, history: int) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    width = len(HEADS) * HISTORY_TOKENS
    past = list(range(width))  # the columns; ``history`` is the level's span
    token = [*past, width, width + 1, width + 2]
    ages = [width + 3 + 3 * k + part for k in range(HISTORY_TOKENS) for part in range(3)]
    oldest = [c for c in ages if (c - width - 3) % 3 == 1]
    count = [c for c in ages if (c - width - 3) % 3 == 0]
    phase = [width + 3 + 3 * HISTORY_TOKENS + k for k in range(4)]
    own = [phase[-1] + 1 + k for k in range(len(HEADS) - 1)]
    loud = [own[-1] + 1 + k for k in range(HISTORY_TOKENS)]
    register = [loud[-1] + 1 + k for k in range(3)]
    known = [register[-1] + 1 + k for k in range(HISTORY_TOKENS)]
    alive = [known[-1] + 1 + k for k in range(HISTORY_TOKENS)]
    probes = {"length": {"the last 8 tokens' features": past, "+ the sounding ages": past + ages,
                         "+ the oldest sounding token's age only": past + oldest,
                         "+ how many tokens sound only": past + count,
                         "+ the sounding ages + their lengths as known at the decision": past + ages + known,
                         "+ the sounding ages + known lengths + the others' ages at the decision":
                             past + ages + known + alive},
              "velocity": {"the last 8 tokens' features, the token's pitch and size": token,
                           "+ the score's metric position": token + phase,
                           "+ the token's own other classes (drawn before it)": token + own,
                           "+ the last 8 tokens' exact velocities against the level now": token + loud,
                           "+ the token's own register (lowest, highest pitch, notes)": token + register,
                           "+ both": token + loud + register}}
    for head, columns in probes.items():
        x_train, y_train = tree_rows(ds, train, ds.train_expression, head, 1, history)
        x_val, y_val = tree_rows(ds, val, ds.val_expression, head, WINDOW, history)
        classes = int(max(y_train.max(), y_val.max())) + 1
        for name, cols in columns.items():
            model = HistGradientBoostingClassifier(max_iter=400, learning_rate=0.05, early_stopping=True,
                                                   validation_fraction=0.1, random_state=0)
            model.fit(x_train[:, cols], y_train)
            probs = np.full((len(y_val), classes), 1e-9)
            probs[:, model.classes_] = model.predict_proba(x_val[:, cols])
            print(f"trees, {head}: {name}: NLL {nll(probs, y_val):.4f}", flush=True)


def chosen_rows(runner: ModelRunner, ds: Dataset) -> dict[str, np.ndarray]:
    """Each head's distribution after every held-out window, for the token that came."""
    inputs, targets = expressive_windows(ds.val_expression, per_position=False)
    outputs = predict_all(runner, inputs["tokens"], inputs["features"])
    rows = np.arange(len(targets["probs"]))
    return {head: outputs[head][rows, targets["probs"]] for head in runner.heads}


def merged(chosen: dict[str, np.ndarray], ds: Dataset, encoding: Encoding) -> None:
    group = np.zeros(encoding.size("velocity"), int)
    for g, members in enumerate(MERGED):
        group[members] = g
    probs = np.zeros((len(chosen["velocity"]), len(MERGED)))
    np.add.at(probs.T, group, chosen["velocity"].T)  # each merged class: the sum of its members

    def regroup(pieces: Sequence[Expression]) -> list[Expression]:
        return [Expression(p.ids, p.features, {**p.targets, "velocity": np.where(
            p.targets["velocity"] == IGNORE, IGNORE, group[np.maximum(p.targets["velocity"], 0)])}, p.stopped)
            for p in pieces]

    coarse = dataclasses.replace(encoding, velocity=tuple(range(len(MERGED))))
    for name, row in (
            ("13 classes", evaluate_heads({"velocity": chosen["velocity"]}, ds.val_expression, ds.train_expression,
                                          encoding)[0]),
            ("11, merged near 0", evaluate_heads({"velocity": probs}, regroup(ds.val_expression),
                                                 regroup(ds.train_expression), coarse)[0])):
        print(f"merged, velocity in {name}: model {row.nll:.4f}, best n-gram {row.baselines[row.best_baseline]:.4f}, "
              f"ratio {row.ratio:.3f}")


def _ngram_with_memory(train: Sequence[Expression], val: Sequence[Expression], head: str, size: int,
                       order: int) -> float:
    """The order-``order`` n-gram mixed with the session memory as the engine mixes the
    model's: each piece streamed from its start, every value remembered once it is known."""
    ngram = baseline(head, order, size, train)
    mixed = []
    for piece in val:
        memory = NGramMemory(size)
        values = piece.targets[head]
        for i in range(len(piece)):
            if values[i] != IGNORE and i >= WINDOW:
                p = ngram.distribution(known_history(piece, head, i, order))
                mixed.append(float(memory.mixed(p, WEIGHT)[values[i]]))
            if values[i] != IGNORE:  # a delay, timing or velocity is known as its token is played
                memory.observe(int(values[i]))
    return float(-np.mean(np.log(np.maximum(mixed, 1e-12))))


def memory(runner: ModelRunner, chosen: dict[str, np.ndarray], ds: Dataset, encoding: Encoding) -> None:
    streamed = stream(runner, ds.val_expression, WEIGHT, full_window_only=True)
    heads = ("delay", "timing", "velocity")
    rows = evaluate_heads({head: chosen[head] for head in heads}, ds.val_expression, ds.train_expression, encoding)
    names = [ngram_name(order) for order in BASELINE_ORDERS]
    for row in rows:
        order = BASELINE_ORDERS[names.index(row.best_baseline)]
        with_memory = _ngram_with_memory(ds.train_expression, ds.val_expression, row.head, encoding.size(row.head),
                                         order)
        model_alone, mixed_model = (r.nll for r in streamed[row.head])  # the model's, then with the memory
        print(f"memory, {row.head}: model {model_alone:.4f} → with memory {mixed_model:.4f}; best n-gram "
              f"({row.best_baseline}) {row.baselines[row.best_baseline]:.4f} → with memory {with_memory:.4f}; "
              f"ratio with memory {mixed_model / with_memory:.3f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("models/chopin.onnx"))
    parser.add_argument("--data", type=Path, default=default_data_dir())
    parser.add_argument("--only", choices=("trees", "merged", "memory"))
    args = parser.parse_args()
    runner = ModelRunner(args.model)
    encoding = runner.info.expression
    if encoding is None:
        parser.error(f"{args.model} has no expressive heads")
    corpus = read_corpus(args.data, "mido")
    ds = build_dataset(corpus.pieces, vocabulary=runner.vocabulary, expressive=True, encoding=encoding)
    names = {p.name: p for p in corpus.pieces}
    if args.only in (None, "trees"):
        trees(ds, [names[n] for n in ds.train_pieces], [names[n] for n in ds.val_pieces], encoding.history)
    if args.only in (None, "merged", "memory"):
        chosen = chosen_rows(runner, ds)
        if args.only in (None, "merged"):
            merged(chosen, ds, encoding)
        if args.only in (None, "memory"):
            memory(runner, chosen, ds, encoding)


if __name__ == "__main__":
    main()
