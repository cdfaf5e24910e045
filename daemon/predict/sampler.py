"""Sample the next token id from the model's probabilities.

- ``greedy``: the most probable token, exactly what the reference notebook does. It is
  deterministic and may fall into an endless loop (a riff repeated forever); no guard is
  applied, so it reproduces the notebook.
- ``temperature``: sample from ``p ** (1 / T)``, renormalised.
- ``top-p`` (this class's default; the daemon's is ``temperature``): temperature first,
  then sample from the smallest set of tokens whose probability adds up to ``top_p``.

A head's class (how the token is played) is drawn from the same generator, at its own
temperature, by :class:`.heads.HeadSampler`; greedy takes the likeliest class.

The two random methods use a seeded :class:`numpy.random.Generator` and a loop guard:
a token that would make a pattern of 1–4 tokens repeat a fifth time back to back is
never chosen (its probability is set to zero before sampling). :func:`longest_loop`
measures the same property on any token sequence.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MAX_PATTERN = 4  # patterns of 1..4 tokens are guarded
MAX_REPEATS = 4  # a pattern may repeat at most this many times back to back
TINY = 1e-12  # the least probability a tempered class keeps (a log of 0 has no temperature)


def longest_loop(tokens: Sequence[object], max_pattern: int = MAX_PATTERN) -> tuple[int, int]:
    """The pattern length (1..max_pattern) repeated most times back to back, and that count.

    ``longest_loop("abababc")`` is ``(2, 3)``. Ties go to the shorter pattern; an empty
    sequence gives ``(1, 0)``.
    """
    best = (1, 1 if len(tokens) else 0)
    for length in range(1, max_pattern + 1):
        # run = how many consecutive positions i satisfy tokens[i] == tokens[i - length];
        # a run of r such positions means the pattern occurs 1 + r // length times.
        run = 0
        for i in range(length, len(tokens)):
            run = run + 1 if tokens[i] == tokens[i - length] else 0
            repeats = 1 + run // length
            if repeats > best[1]:
                best = (length, repeats)
    return best


def looping_ids(history: np.ndarray, max_pattern: int = MAX_PATTERN,
                max_repeats: int = MAX_REPEATS) -> list[int]:
    """Ids that, appended to ``history``, would repeat a pattern more than ``max_repeats`` times."""
    banned = []
    # numpy's scalars compare many times slower than ints
    history = history.tolist() if isinstance(history, np.ndarray) else list(history)
    n = len(history)
    for length in range(1, max_pattern + 1):
        span = length * (max_repeats + 1) - 1  # history tokens the candidate would complete
        if span > n:
            break
        tail = history[n - span:]
        if all(tail[i] == tail[i + length] for i in range(span - length)):
            banned.append(int(history[n - length]))
    return banned


def tempered(probs: np.ndarray, temperature: float) -> np.ndarray:
    """``probs`` as float64 (a copy), sharpened (< 1) or flattened (> 1) by ``temperature``."""
    p = probs.astype(np.float64)
    return p if temperature == 1.0 else np.exp(np.log(np.maximum(p, TINY)) / temperature)


class Sampler:
    """Chooses ids from probability vectors. Not thread-safe (it owns a random generator)."""

    def __init__(self, method: str = "top-p", temperature: float = 1.0, top_p: float = 0.95,
                 seed: int | None = None) -> None:
        if method not in ("greedy", "temperature", "top-p"):
            raise ValueError(f"sampling must be greedy, temperature or top-p, got {method!r}")
        self.method = method
        self.temperature = temperature
        self.top_p = top_p
        self.rng = np.random.default_rng(seed)
        self.guard = True  # off only to measure what the model itself does (``mididuet-train decoding``)

    def sample(self, probs: np.ndarray, history: np.ndarray | None = None) -> int:
        """One id from ``probs`` (shape ``[V]``); ``history`` (recent ids) feeds the loop guard."""
        if self.method == "greedy":
            return int(np.argmax(probs))
        p = tempered(probs, self.temperature)  # a copy: the guard below writes into it
        banned = looping_ids(history) if history is not None and self.guard else []
        for token_id in banned:
            p[token_id] = 0.0
        # The arrays' own methods: numpy's functions of the same name dispatch first, about
        # 1 µs more a call, as much as the cumulative sum itself (benchmarks/RESULTS.md).
        if self.method == "top-p" and self.top_p < 1.0:
            order = p.argsort()[::-1]
            cumulative = p[order].cumsum()
            total = cumulative[-1]
            if total <= TINY:
                return self._fallback(probs, banned)
            keep = int(cumulative.searchsorted(self.top_p * total)) + 1
            pick = int(cumulative.searchsorted(self.rng.random() * cumulative[keep - 1], side="right"))
            return int(order[min(pick, keep - 1)])
        cumulative = p.cumsum()
        if cumulative[-1] <= TINY:
            return self._fallback(probs, banned)
        return self._draw(cumulative)

    def _draw(self, cumulative: np.ndarray) -> int:
        """An index drawn in proportion to the steps of ``cumulative`` (one random draw)."""
        pick = int(cumulative.searchsorted(self.rng.random() * cumulative[-1], side="right"))
        return min(pick, len(cumulative) - 1)

    @staticmethod
    def _fallback(probs: np.ndarray, banned: list[int]) -> int:
        """The model is certain of a banned token: take the most probable of the others."""
        others = probs.astype(np.float64)
        others[banned] = -1.0
        return int(np.argmax(others))
