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

A head is worth having when its NLL is well below the best of these. Those are the issue's
baselines, and they know nothing of the token the head is told. So each head is also
scored against a **token-aware** baseline: the class's counts after that very token in the
training pieces, Witten–Bell backed off to its counts after any token of as many pitch
classes, then to the best n-gram above (a first level of the token with the attribute's
last value did worse: too sparse). For a chord, the token decides much of its voicing; a
head that only matches this lookup has learned little more. Where the token says little
(the rhythm), the lookup does worse than the n-gram it backs off to, so each head's second
ratio is to the best of all its baselines.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from mididuet.daemon.music.expression import Encoding
from mididuet.daemon.music.tokens import token_pitch_classes
from mididuet.daemon.predict.bundle import WINDOW

from .evaluate import NGram, ngram_name, nll_of, witten_bell
from .expression import IGNORE, Expression
from .temperature import best_temperature, temperature_text

BASELINE_ORDERS = (1, 2, 3, 4)
STILL_SOUNDING = -2  # the history's symbol for a length not yet known: its notes still sound


@dataclass(frozen=True)
class HeadMetrics:
    head: str
    targets: int
    nll: float
    top1: float
    baselines: dict[str, float]  # name -> NLL
    token_aware: float | None = None  # NLL of the token-aware baseline (none: not measured)
    # The temperature that would score these very targets best, and its NLL: how sure of
    # itself the head is here (chosen on these pieces, so a diagnosis, not a score).
    temperature: float | None = None
    tempered_nll: float | None = None

    @property
    def best_baseline(self) -> str:
        return min(self.baselines, key=lambda name: self.baselines[name])

    @property
    def ratio(self) -> float:
        return self.nll / self.baselines[self.best_baseline]

    @property
    def token_ratio(self) -> float | None:
        """The NLL ÷ the best of all its baselines, the token-aware one among them."""
        if self.token_aware is None:
            return None
        return self.nll / min(self.token_aware, self.baselines[self.best_baseline])

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "best_baseline": self.best_baseline, "ratio": self.ratio,
                "token_ratio": self.token_ratio}


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


def token_aware_nll(head: str, train: Sequence[Expression], vocabulary: Sequence[str], tokens: np.ndarray,
                    priors: np.ndarray, targets: np.ndarray) -> float:
    """The token-aware baseline's NLL (see the module's docstring) of ``targets``, the
    held-out values of ``head`` after ``tokens``, backed off to ``priors``: the best
    n-gram's distribution for each."""
    def width(token_id: int) -> int:
        return len(token_pitch_classes(vocabulary[token_id]))

    by_token: dict[int, Counter[int]] = defaultdict(Counter)
    by_width: dict[int, Counter[int]] = defaultdict(Counter)
    for piece in train:
        for token_id, value in zip(piece.ids.tolist(), piece.targets[head].tolist(), strict=True):
            if value != IGNORE:
                by_token[token_id][value] += 1
                by_width[width(token_id)][value] += 1
    chosen = [witten_bell(by_token[t], witten_bell(by_width[width(t)], prior))[value]
              for t, prior, value in zip(tokens.tolist(), priors, targets.tolist(), strict=True)]
    return nll_of(np.asarray(chosen))


def evaluate_heads(head_probs: dict[str, np.ndarray], val: Sequence[Expression], train: Sequence[Expression],
                   encoding: Encoding, vocabulary: Sequence[str] | None = None) -> list[HeadMetrics]:
    """One row per head: ``head_probs[head]`` is ``[N, C]``, each held-out window's row
    for the token that came; with the ``vocabulary``, the token-aware baseline too."""
    rows = []
    for head, probs in head_probs.items():
        size = encoding.size(head)
        targets, _ = held_out_targets(val, head, 1)
        keep = targets != IGNORE
        if not keep.any():
            continue
        values = targets[keep]
        nll = nll_of(probs[np.flatnonzero(keep), values])
        top1 = float(np.mean(probs[keep].argmax(axis=1) == values))
        baselines, dists = {}, {}
        for order in BASELINE_ORDERS:
            model = baseline(head, order, size, train)
            _, contexts = held_out_targets(val, head, order)
            dists[order] = np.stack([model.distribution(contexts[i]) for i in np.flatnonzero(keep)])
            baselines[ngram_name(order)] = nll_of(dists[order][np.arange(len(values)), values])
        token_aware = None
        if vocabulary is not None:
            best = min(BASELINE_ORDERS, key=lambda order: baselines[ngram_name(order)])
            tokens = np.concatenate([piece.ids[WINDOW:] for piece in val])[keep]
            token_aware = token_aware_nll(head, train, vocabulary, tokens, dists[best], values)
        temperature, at_best = best_temperature(probs[keep], values)
        rows.append(HeadMetrics(head, int(keep.sum()), nll, top1, baselines, token_aware, temperature, at_best))
    return rows


def format_head_table(rows: Sequence[HeadMetrics]) -> str:
    """A Markdown table: each head's NLL beside its baselines, and the ratio to the best;
    and the token-aware baseline's, when measured."""
    names = [ngram_name(order) for order in BASELINE_ORDERS]
    aware = all(r.token_aware is not None for r in rows)
    lines = ["| head | held-out targets | NLL (nats) | top-1 | " + " | ".join(f"{n} NLL" for n in names)
             + " | best baseline | NLL ÷ best |" + (" token-aware NLL | NLL ÷ best of all |" if aware else ""),
             "|---|---:|---:|---:|" + "---:|" * len(names) + "---|---:|" + ("---:|---:|" if aware else "")]
    for r in rows:
        lines.append(f"| {r.head} | {r.targets} | {r.nll:.4f} | {r.top1:.1%} | "
                     + " | ".join(f"{r.baselines[n]:.4f}" for n in names)
                     + f" | {r.best_baseline} | {r.ratio:.3f} |"
                     + (f" {r.token_aware:.4f} | {r.token_ratio:.3f} |" if aware else ""))
    return "\n".join(lines)


TEMPERATURE_TEXT = ("The temperature T at which each head would score these pieces best (its distribution "
                    "p^(1/T), renormalised; above 1, the head is surer than these pieces bear out). T is chosen "
                    "on the pieces it is scored on: a diagnosis, not a score. To bake one in "
                    "(`--head-temperature`), choose it on a `--split development` run's pieces.")


def format_temperature_table(rows: Sequence[HeadMetrics]) -> str:
    """A Markdown table: the temperature at which each head would score these pieces best,
    and what it would gain (a head above 1 is surer than these pieces bear out)."""
    lines = ["| head | NLL | best temperature | NLL at it | gain (nats) |", "|---|---:|---:|---:|---:|"]
    for r in rows:
        if r.temperature is not None and r.tempered_nll is not None:
            lines.append(f"| {r.head} | {r.nll:.4f} | {temperature_text(r.temperature)} | {r.tempered_nll:.4f} | "
                         f"{r.nll - r.tempered_nll:.4f} |")
    return "\n".join(lines)
