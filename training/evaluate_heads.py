"""How well the expressive heads predict held-out music, beside baselines on the same classes.

Scored on the same targets as the token (the token after each held-out 32-token window),
for the token that really came (the heads are conditioned on it), wherever the head has
something to say (voicing only for chords; delay and length once a pulse is known).

Baselines for each head, trained on the training pieces' own values of that attribute:

- **unigram**: how often each class occurs (add-one);
- **n-grams** over the attribute's own history: the previous 1–3 values of the same
  attribute in the piece (for voicing, the previous chords'), Witten–Bell interpolated
  down to the unigram (:class:`.evaluate.NGram`). For the length, the history as it is
  known when the next token is decided (:func:`known_history`): not the last token's
  (its keys are still down), and of those before it, a length whose notes still sound
  (under the pedal, most) only as "still sounding". The model reads less: each token's
  length only if it had stopped by the next onset, else "held" (:mod:`.expression`).

A head is worth having when its NLL is well below the best of these.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from mididuet.daemon.music.expression import Encoding
from mididuet.daemon.predict.bundle import WINDOW

from .evaluate import PROB_FLOOR, NGram, ngram_name
from .expression import IGNORE, Expression

BASELINE_ORDERS = (1, 2, 3, 4)
STILL_SOUNDING = -2  # the history's symbol for a length not yet known: its notes still sound


@dataclass(frozen=True)
class HeadMetrics:
    head: str
    targets: int
    nll: float
    top1: float
    baselines: dict[str, float]  # name -> NLL

    @property
    def best_baseline(self) -> str:
        return min(self.baselines, key=lambda name: self.baselines[name])

    @property
    def ratio(self) -> float:
        return self.nll / self.baselines[self.best_baseline]

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "best_baseline": self.best_baseline, "ratio": self.ratio}


def _history(values: np.ndarray) -> list[int]:
    return [int(v) for v in values if v != IGNORE]


def skipped(head: str) -> int:
    """How many of the latest values of ``head`` are unknown when the next is predicted."""
    return 1 if head == "length" else 0


def known_history(piece: Expression, head: str, j: int, order: int) -> list[int]:
    """The last ``order - 1`` values of ``head`` known when token ``j`` of ``piece`` is
    decided, oldest first. For the length, that is as the token before ``j`` is played
    (the daemon decides the next token then): its own length is unknown, and of the
    tokens before it, a length counts once its notes had stopped by that onset; the
    others are :data:`STILL_SOUNDING` (so at least that long)."""
    values = piece.targets[head]
    skip = skipped(head)
    stopped = piece.stopped if skip and piece.stopped is not None else None
    context: list[int] = []
    k = j - 1 - skip
    while k >= 0 and len(context) < order - 1:
        if values[k] != IGNORE:
            context.append(int(values[k]) if stopped is None or stopped[k] <= j - 1 else STILL_SOUNDING)
        k -= 1
    return context[::-1]


def held_out_targets(pieces: Sequence[Expression], head: str, order: int,
                     window: int = WINDOW) -> tuple[np.ndarray, list[list[int]]]:
    """Each last-position target of ``head`` (IGNORE kept, as :func:`.dataset.expressive_windows`
    orders them) and the attribute's previous ``order - 1`` known values before it in its
    piece (:func:`known_history`)."""
    targets: list[int] = []
    contexts: list[list[int]] = []
    for piece in pieces:
        values = piece.targets[head]
        for j in range(window, len(piece)):
            targets.append(int(values[j]))
            contexts.append(known_history(piece, head, j, order))
    return np.asarray(targets, dtype=np.int64), contexts


def baseline(head: str, order: int, size: int, train: Sequence[Expression]) -> NGram:
    """The order-``order`` n-gram of ``head`` over the training pieces, from what is known
    when each value is predicted."""
    if not skipped(head):
        return NGram(order, size, [np.asarray(_history(p.targets[head]), dtype=np.int64) for p in train])
    return NGram.from_contexts(order, size, ((known_history(p, head, j, order), int(p.targets[head][j]))
                                             for p in train for j in range(len(p)) if p.targets[head][j] != IGNORE))


def evaluate_heads(head_probs: dict[str, np.ndarray], val: Sequence[Expression], train: Sequence[Expression],
                   encoding: Encoding) -> list[HeadMetrics]:
    """One row per head: ``head_probs[head]`` is ``[N, C]``, each held-out window's row
    for the token that came."""
    rows = []
    for head, probs in head_probs.items():
        size = encoding.size(head)
        targets, _ = held_out_targets(val, head, 1)
        keep = targets != IGNORE
        if not keep.any():
            continue
        picked = probs[np.flatnonzero(keep), targets[keep]]
        nll = float(-np.mean(np.log(np.maximum(picked, PROB_FLOOR))))
        top1 = float(np.mean(probs[keep].argmax(axis=1) == targets[keep]))
        baselines = {}
        for order in BASELINE_ORDERS:
            model = baseline(head, order, size, train)
            _, contexts = held_out_targets(val, head, order)
            dist = np.stack([model.distribution(contexts[i]) for i in np.flatnonzero(keep)])
            chosen = dist[np.arange(len(dist)), targets[keep]]
            baselines[ngram_name(order)] = float(-np.mean(np.log(np.maximum(chosen, PROB_FLOOR))))
        rows.append(HeadMetrics(head, int(keep.sum()), nll, top1, baselines))
    return rows


def format_head_table(rows: Sequence[HeadMetrics]) -> str:
    """A Markdown table: each head's NLL beside its baselines, and the ratio to the best."""
    names = [ngram_name(order) for order in BASELINE_ORDERS]
    lines = ["| head | held-out targets | NLL (nats) | top-1 | " + " | ".join(f"{n} NLL" for n in names)
             + " | best baseline | NLL ÷ best |",
             "|---|---:|---:|---:|" + "---:|" * len(names) + "---|---:|"]
    for r in rows:
        lines.append(f"| {r.head} | {r.targets} | {r.nll:.4f} | {r.top1:.1%} | "
                     + " | ".join(f"{r.baselines[n]:.4f}" for n in names)
                     + f" | {r.best_baseline} | {r.ratio:.3f} |")
    return "\n".join(lines)
