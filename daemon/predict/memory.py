"""The session memory: what this session played, counted online and mixed into each prediction.

Music repeats its own motifs, and a partner that picks up the player's motifs answers as
a musician would. The memory counts the n-grams (orders 1…:data:`ORDER`) of every token this
session has heard or played — the player's and mididuet's own — and of the classes of
the expressive attributes in :data:`REMEMBERED_HEADS`, and predicts the next one
Witten–Bell interpolated down to a uniform distribution. The daemon mixes it with the
model, for the token and for each of those heads, as
``p = (1 − λc) · model + λc · memory`` (:meth:`NGramMemory.mixed`), where ``c`` is the memory's
confidence after the current context (:meth:`NGramMemory.predict`): the share of its
longest known context's probability that comes from counts. An empty memory weighs
nothing; a context it has not seen falls back to the shorter ones it knows.

Bounded and O(1): only the last :data:`SPAN` symbols are counted (a symbol falling out of
the span is subtracted again), counts live in a dense unigram and a dict of rows, one per
context in the span, with their sums kept as they change. The memory's part of the
next prediction is worked out when a symbol is observed (:meth:`NGramMemory.prime`),
after that token's notes have gone out, so a decision only adds it in
(benchmarks/RESULTS.md).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

import numpy as np

ORDER = 3  # the longest n-gram: the next symbol after the last two
# The heads whose classes the memory keeps: when, how long, how loud, how high. Not the
# other voicing heads: a bass index or a spread means something else for another chord,
# and their predictions got worse with it (docs/model-quality.md, with what the length costs).
REMEMBERED_HEADS = ("delay", "timing", "length", "velocity", "octave")
SPAN = 2048  # symbols remembered: about an hour of a duet's tokens at a phrase a minute


class NGramMemory:
    """Online Witten–Bell n-grams over symbols ``0..size-1``. Not thread-safe: one caller."""

    def __init__(self, size: int, order: int = ORDER, span: int = SPAN) -> None:
        if size < 1 or order < 1 or span < order:
            raise ValueError(f"need size ≥ 1, order ≥ 1 and span ≥ order, got {size}, {order}, {span}")
        self.size, self.order, self.span = size, order, span
        self._symbols: deque[int] = deque()
        self._unigram = np.zeros(size, dtype=np.float64)
        self._unigram_types = 0
        self._rows: dict[tuple[int, ...], np.ndarray] = {}  # context → counts of what followed
        self._types: dict[tuple[int, ...], int] = {}  # context → how many distinct symbols followed
        self._totals: dict[tuple[int, ...], int] = {}  # context → how many symbols followed
        self._uniform = np.full(size, 1.0 / size)
        # (weight, the model's share, the memory's weighed term) of the next mix.
        self._cache: tuple[float, float, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self._symbols)

    def observe(self, symbol: int) -> None:
        """One more symbol (the newest). O(order); the oldest leaves once the span is full."""
        if not 0 <= symbol < self.size:
            raise ValueError(f"symbol must be in range 0..{self.size - 1}, got {symbol}")
        self._symbols.append(symbol)
        self._count(len(self._symbols) - 1, +1)
        if len(self._symbols) > self.span:
            self._count(0, -1)
            self._symbols.popleft()
        self._cache = None

    def _count(self, index: int, step: int) -> None:
        """Add (``step`` +1) or take away (-1) the n-grams that *start* or end at ``index``:
        those ending there when added (the newest), those starting there when removed (the
        oldest), so each n-gram is counted while all its symbols are in the span."""
        symbols = self._symbols
        first = symbols[index]
        if step > 0:
            self._unigram_types += int(self._unigram[first] == 0)
            self._unigram[first] += 1
            for k in range(1, self.order):
                if index - k < 0:
                    break
                self._bump(tuple(symbols[i] for i in range(index - k, index)), symbols[index], 1)
        else:
            self._unigram[first] -= 1
            self._unigram_types -= int(self._unigram[first] == 0)
            for k in range(1, self.order):
                if index + k >= len(symbols):
                    break
                self._bump(tuple(symbols[i] for i in range(index, index + k)), symbols[index + k], -1)

    def _bump(self, context: tuple[int, ...], symbol: int, step: int) -> None:
        row = self._rows.get(context)
        if row is None:
            row = self._rows[context] = np.zeros(self.size, dtype=np.float64)
            self._types[context] = self._totals[context] = 0
        before = row[symbol]
        row[symbol] = before + step
        self._totals[context] += step
        if before == 0 and step > 0:
            self._types[context] += 1
        elif row[symbol] == 0:
            self._types[context] -= 1
            if self._types[context] == 0:
                del self._rows[context], self._types[context], self._totals[context]

    def predict(self, history: Iterable[int]) -> tuple[np.ndarray, float]:
        """The next symbol's probabilities after ``history`` (its last ``order - 1`` count)
        and the memory's confidence in them (0 when it has counted nothing)."""
        total = len(self._symbols)
        if not total:
            return self._uniform, 0.0
        types = self._unigram_types
        p = self._unigram * (1.0 / (total + types)) + types / (self.size * (total + types))
        confidence = total / (total + types)
        context = self._context(history)
        for k in range(1, len(context) + 1):
            key = context[len(context) - k:]
            row = self._rows.get(key)
            if row is None:
                break  # a longer context unseen cannot have been seen either
            n, types = self._totals[key], self._types[key]
            p = row * (1.0 / (n + types)) + p * (types / (n + types))
            confidence = n / (n + types)
        return p, confidence

    def _context(self, history: Iterable[int]) -> tuple[int, ...]:
        if self.order == 1:
            return ()
        values = history.tolist() if isinstance(history, np.ndarray) else list(history)
        return tuple(values[-(self.order - 1):])

    def distribution(self, history: Iterable[int]) -> np.ndarray:
        return self.predict(history)[0]

    def prime(self, weight: float) -> None:
        """Work out the memory's part of the next mix (after the symbols it has seen last)
        now, so that :meth:`mixed` only adds it in."""
        cache = self._cache
        if weight > 0 and self._symbols and (cache is None or cache[0] != weight):
            last = len(self._symbols)
            key = self._context([self._symbols[i] for i in range(max(0, last - self.order + 1), last)])
            p, confidence = self.predict(key)
            share = weight * confidence
            # A new tuple, never one changed in place: HeadSampler.follow tells a new mix by identity.
            self._cache = (weight, 1.0 - share, p * share)

    def mixing(self, weight: float) -> tuple[float, float, np.ndarray] | None:
        """``(weight, the model's share, the memory's weighed term)`` of the next mix: the
        same object until a symbol is observed or the weight changes, then a new one; None
        when the memory weighs nothing."""
        if weight <= 0 or not self._symbols:
            return None
        self.prime(weight)
        return self._cache

    def mixed(self, model: np.ndarray, weight: float) -> np.ndarray:
        """``model`` mixed with this memory's prediction after the symbols it has seen last,
        at ``weight`` × its confidence."""
        if weight <= 0 or not self._symbols:
            return model
        self.prime(weight)
        assert self._cache is not None
        _, keep, term = self._cache
        return model * keep + term
