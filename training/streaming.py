"""What the daemon really predicts: the bundle streamed through whole pieces, with its memory.

The standard evaluation scores each held-out 32-token window on its own. The daemon does
something else: it listens to a piece from its first token, its window filling from the
primer, and its session memory (:mod:`mididuet.daemon.predict.memory`) counting every
token so far. Here each piece is streamed so: before token ``i``, the window holds the
primer and the piece's first ``i`` tokens (with their features, for an expressive bundle),
the memory has counted those, and the prediction is the model's alone and mixed with the
memory exactly as the engine mixes it. Scored on every token, and on the tokens after a
full window (the targets of the standard evaluation, so the model-alone figure matches it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from mididuet.daemon.music.expression import UNKNOWN
from mididuet.daemon.predict.bundle import WINDOW, ModelRunner
from mididuet.daemon.predict.memory import REMEMBERED_HEADS, NGramMemory
from mididuet.daemon.predict.window import primer_ids

from .evaluate import NGRAM_ORDERS, NGram, ngram_name, nll_of
from .expression import IGNORE, Expression

CHUNK = 512


@dataclass(frozen=True)
class Streamed:
    """NLL and top-1 of one way of predicting, over ``targets`` tokens (or head values)."""

    name: str
    nll: float
    top1: float
    targets: int

    def as_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def _score(name: str, picked: list[float], best: list[bool]) -> Streamed:
    return Streamed(name, nll_of(picked), float(np.mean(best)), len(picked))


def _windows(model: ModelRunner, piece: Expression) -> tuple[np.ndarray, np.ndarray]:
    """The window before each token of ``piece``: the primer, then the piece so far."""
    primer = np.asarray(primer_ids(model.info.token_ids()), dtype=np.int32)
    ids = np.concatenate([primer, piece.ids])
    width = piece.features.shape[1]
    features = np.concatenate([np.full((WINDOW, width), UNKNOWN, np.int32), piece.features])
    view = np.lib.stride_tricks.sliding_window_view
    return view(ids, WINDOW)[:len(piece)], np.moveaxis(view(features, WINDOW, axis=0), -1, 1)[:len(piece)]


def _stopped_at(piece: Expression) -> dict[int, list[int]]:
    """Token index → the tokens whose notes had all stopped by its onset, and not before."""
    found: dict[int, list[int]] = {}
    if piece.stopped is not None:
        for k, first in enumerate(piece.stopped.tolist()):
            found.setdefault(first, []).append(k)
    return found


def stream(model: ModelRunner, pieces: Sequence[Expression], weight: float,
           train: Sequence[np.ndarray] = (), full_window_only: bool = False) -> dict[str, list[Streamed]]:
    """``{"tokens": [model, model + memory, n-grams...], head: [model, model + memory]}``
    over ``pieces`` streamed from their start. ``train``: the sequences the n-gram
    baselines learn from (none: no baselines); ``full_window_only``: score only the tokens
    after a full window of the piece."""
    vocab_size = model.info.size
    picked: dict[str, list[float]] = {"model": [], "memory": []}
    best: dict[str, list[bool]] = {"model": [], "memory": []}
    heads = list(model.heads)
    head_picked = {h: {"model": [], "memory": []} for h in heads}
    head_best = {h: {"model": [], "memory": []} for h in heads}
    contexts: list[np.ndarray] = []
    targets_all: list[int] = []
    for piece in pieces:
        windows, features = _windows(model, piece)
        memory = NGramMemory(vocab_size)
        head_memory = {h: NGramMemory(model.info.expression.size(h))  # type: ignore[union-attr]
                       for h in heads if h in REMEMBERED_HEADS}
        first = WINDOW if full_window_only else 0
        # The tokens whose notes had all stopped by token i's onset, when the token after it
        # is decided (ahead, as token i plays): under the pedal most still sound then.
        stopped_at = _stopped_at(piece)
        for start in range(0, len(piece), CHUNK):
            stop = min(start + CHUNK, len(piece))
            outputs = model.predict_batch(windows[start:stop], features[start:stop] if heads else None)
            for i in range(start, stop):
                target = int(piece.ids[i])
                probs = outputs["probs"][i - start]
                mixed = memory.mixed(probs, weight)
                if i >= first:
                    for name, p in (("model", probs), ("memory", mixed)):
                        picked[name].append(float(p[target]))
                        best[name].append(int(np.argmax(p)) == target)
                    contexts.append(windows[i])
                    targets_all.append(target)
                for head in heads:
                    value = int(piece.targets[head][i])
                    if value != IGNORE and i >= first:
                        row = outputs[head][i - start][target]
                        row_mixed = head_memory[head].mixed(row, weight) if head in head_memory else row
                        for name, p in (("model", row), ("memory", row_mixed)):
                            head_picked[head][name].append(float(p[value]))
                            head_best[head][name].append(int(np.argmax(p)) == value)
                    if head not in head_memory:
                        continue
                    if head == "length":  # as the engine learns a length: once its notes have stopped
                        for k in stopped_at.get(i, ()):
                            if piece.targets[head][k] != IGNORE:
                                head_memory[head].observe(int(piece.targets[head][k]))
                        continue
                    known = int(piece.features[i, model.features.index(head)])
                    if known > 0:  # as the engine remembers it: the class the token's features hold
                        head_memory[head].observe(known - 1)
                memory.observe(target)
    rows = [_score("model", picked["model"], best["model"]),
            _score(f"model + memory (weight {weight:g})", picked["memory"], best["memory"])]
    if len(train):
        x, y = np.stack(contexts), np.asarray(targets_all)
        for order in NGRAM_ORDERS:
            probs = NGram(order, vocab_size, train).predict(x)
            rows.append(_score(ngram_name(order), list(probs[np.arange(len(y)), y]), list(probs.argmax(axis=1) == y)))
    result = {"tokens": rows}
    for head in heads:
        if head_picked[head]["model"]:
            result[head] = [_score("model", head_picked[head]["model"], head_best[head]["model"]),
                            _score("model + memory", head_picked[head]["memory"], head_best[head]["memory"])]
    return result


def format_streamed(result: dict[str, list[Streamed]]) -> str:
    """Markdown: the token's rows (with NLL ÷ the model alone and ÷ the best n-gram), then
    each head's, model alone beside model + memory."""
    rows = result["tokens"]
    alone = rows[0].nll
    grams = [r for r in rows if r.name.endswith("gram")]
    best = min(grams, key=lambda r: r.nll).nll if grams else float("nan")
    lines = ["| streamed prediction | NLL (nats) | top-1 | NLL ÷ model alone | NLL ÷ best n-gram | targets |",
             "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r.name} | {r.nll:.4f} | {r.top1:.2%} | {r.nll / alone:.3f} | {r.nll / best:.3f} | {r.targets} |"
              for r in rows]
    heads = [k for k in result if k != "tokens"]
    if heads:
        lines += ["", "| head | NLL, model alone | NLL, model + memory | ratio | targets |",
                  "|---|---:|---:|---:|---:|"]
        for head in heads:
            model, memory = result[head]
            lines.append(f"| {head} | {model.nll:.4f} | {memory.nll:.4f} | {memory.nll / model.nll:.3f} "
                         f"| {model.targets} |")
    return "\n".join(lines)
