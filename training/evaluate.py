"""Next-token metrics on held-out music, beside n-gram baselines trained on the same pieces.

Every row is scored on the same targets: each validation window's next token. The
baselines see the same training sequences and vocabulary as the model: a unigram with
add-one smoothing and n-grams of orders 2-4 interpolated down to it with Witten-Bell
smoothing (no tuning knob, so no held-out data is spent choosing one).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

PROB_FLOOR = 1e-12  # a probability of exactly 0 would make the NLL infinite
NGRAM_ORDERS = (1, 2, 3, 4)


@dataclass(frozen=True)
class Metrics:
    name: str
    nll: float  # mean negative log-likelihood, nats per token
    top1: float
    top5: float
    targets: int

    @property
    def perplexity(self) -> float:
        return math.exp(self.nll)

    def as_dict(self) -> dict[str, float | int | str]:
        return {**asdict(self), "perplexity": self.perplexity}


def nll_of(chosen: Any) -> float:
    """Mean negative log of the probabilities given to what came (floored at
    :data:`PROB_FLOOR`, so a 0 stays finite)."""
    return float(-np.mean(np.log(np.maximum(chosen, PROB_FLOOR))))


def score(name: str, probs: np.ndarray, targets: np.ndarray) -> Metrics:
    """NLL, top-1 and top-5 accuracy of probability rows against target ids."""
    if len(targets) == 0:
        raise ValueError("no validation targets to score (are the held-out pieces shorter than 33 tokens?)")
    picked = probs[np.arange(len(targets)), targets]
    nll = nll_of(picked)
    # A target ranks in the top k when fewer than k tokens are strictly more probable.
    better = (probs > picked[:, None]).sum(axis=1)
    return Metrics(name, nll, float(np.mean(better < 1)), float(np.mean(better < 5)), len(targets))


class NGram:
    """An order-``n`` model, Witten-Bell interpolated down to an add-one unigram."""

    def __init__(self, order: int, vocab_size: int, sequences: Sequence[np.ndarray]) -> None:
        self._fit(order, vocab_size, ((ids[max(i - order + 1, 0):i], token)
                                      for ids in (seq.tolist() for seq in sequences) for i, token in enumerate(ids)))

    @classmethod
    def from_contexts(cls, order: int, vocab_size: int, examples: Iterable[tuple[Sequence[int], int]]) -> NGram:
        """An n-gram counted from (context, next symbol) pairs, for a history that is not
        simply the symbols before (context symbols may lie outside ``vocab_size``)."""
        model = cls.__new__(cls)
        model._fit(order, vocab_size, examples)
        return model

    def _fit(self, order: int, vocab_size: int, examples: Iterable[tuple[Sequence[int], int]]) -> None:
        if order < 1:
            raise ValueError(f"n-gram order must be at least 1, got {order}")
        self.order = order
        self.vocab_size = vocab_size
        # counts[k][context of length k] -> Counter of next ids
        self._counts: list[dict[tuple[int, ...], Counter[int]]] = [defaultdict(Counter) for _ in range(order)]
        for context, token in examples:
            key = tuple(context[max(len(context) - (order - 1), 0):])
            for k in range(min(order, len(key) + 1)):
                self._counts[k][key[len(key) - k:]][token] += 1
        unigram = np.ones(vocab_size)
        for token, n in self._counts[0][()].items():
            unigram[token] += n
        self._unigram = unigram / unigram.sum()
        self._cache: dict[tuple[int, ...], np.ndarray] = {}

    def distribution(self, context: Sequence[int]) -> np.ndarray:
        key = tuple(context[max(len(context) - (self.order - 1), 0):]) if self.order > 1 else ()
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        probs = self._unigram
        for k in range(1, self.order):
            if k > len(key):
                break
            counts = self._counts[k].get(key[len(key) - k:])
            if not counts:
                break  # a longer context unseen in training cannot have been seen either
            probs = witten_bell(counts, probs)
        self._cache[key] = probs
        return probs

    def predict(self, windows: np.ndarray) -> np.ndarray:
        return np.stack([self.distribution(w.tolist()) for w in windows]) if len(windows) else \
            np.zeros((0, self.vocab_size))


def witten_bell(counts: Mapping[int, int], prior: np.ndarray) -> np.ndarray:
    """``counts`` of what followed a context, Witten–Bell interpolated with ``prior`` (the
    distribution of a shorter context); ``prior`` itself when nothing was counted."""
    if not counts:
        return prior
    seen = np.zeros(len(prior))
    seen[list(counts)] = list(counts.values())
    total, types = sum(counts.values()), len(counts)
    return (seen + types * prior) / (total + types)


def ngram_name(order: int) -> str:
    return "unigram" if order == 1 else f"{order}-gram"


def evaluate_all(
    model_probs: np.ndarray | None,
    model_name: str,
    vocab_size: int,
    train_sequences: Sequence[np.ndarray],
    x_val: np.ndarray,
    y_val: np.ndarray,
) -> list[Metrics]:
    """The model's row (``model_probs``: its ``[N, V]`` probabilities for ``x_val``, when
    given) followed by the baselines' rows."""
    rows = []
    if model_probs is not None:
        rows.append(score(model_name, model_probs, y_val))
    for order in NGRAM_ORDERS:
        rows.append(score(ngram_name(order), NGram(order, vocab_size, train_sequences).predict(x_val), y_val))
    return rows


def best_baseline(rows: Sequence[Metrics]) -> Metrics:
    baselines = [r for r in rows if r.name.endswith("gram")]
    return min(baselines, key=lambda r: r.nll)


def format_table(rows: Sequence[Metrics]) -> str:
    """A Markdown table: one row per model, with NLL relative to the best n-gram."""
    best = best_baseline(rows)
    lines = [
        "| model | NLL (nats) | perplexity | top-1 | top-5 | NLL ÷ best n-gram |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r.name} | {r.nll:.4f} | {r.perplexity:.2f} | {r.top1:.2%} | {r.top5:.2%} "
                     f"| {r.nll / best.nll:.3f} |")
    return "\n".join(lines)
