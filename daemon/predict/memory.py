"""The session memory: what this session played, counted online and mixed into each prediction.

Music repeats its own motifs, and a partner that picks up the player's answers as a
musician would. The memory counts the n-grams (orders 1…:data:`ORDER`) of every token this
session has heard or played — the player's and mididuet's own — and of each expressive
attribute's classes, and predicts the next one Witten–Bell interpolated down to a uniform
distribution. The daemon mixes it with the model, for the token and for each head:
``p = (1 − λc) · model + λc · memory`` (:func:`mix`), where ``c`` is the memory's
confidence after the current context (:meth:`NGramMemory.predict`): the share of its
longest known context's probability that comes from counts. An empty memory, or one that
has never seen the context, says little and weighs little.

Bounded and O(1): only the last :data:`SPAN` symbols are counted (a symbol falling out of
the span is subtracted again), counts live in dense arrays (bigram contexts: ``[V, V]``)
and a dict of rows for the longer contexts, at most one per symbol in the span.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

import numpy as np

ORDER = 3  # the longest n-gram: the next symbol after the last two
SPAN = 2048  # symbols remembered: about an hour of a duet's tokens at a phrase a minute


class NGramMemory:
    """Online Witten–Bell n-grams over symbols ``0..size-1``. Not thread-safe: one caller."""

    def __init__(self, size: int, order: int = ORDER, span: int = SPAN) -> None:
        if size < 1 or order < 1 or span < order:
            raise ValueError(f"need size ≥ 1, order ≥ 1 and span ≥ order, got {size}, {order}, {span}")
        self.size, self.order, self.span = size, order, span
        self._symbols: deque[int] = deque()
        self._unigram = np.zeros(size, dtype=np.float64)
        self._rows: dict[tuple[int, ...], np.ndarray] = {}  # context → counts of what followed
        self._types: dict[tuple[int, ...], int] = {}  # context → how many distinct symbols followed
        self._uniform = np.full(size, 1.0 / size)

    def __len__(self) -> int:
        return len(self._symbols)

    def clear(self) -> None:
        self._symbols.clear()
        self._unigram[:] = 0
        self._rows.clear()
        self._types.clear()

    def observe(self, symbol: int) -> None:
        """One more symbol (the newest). O(order); the oldest leaves once the span is full."""
        if not 0 <= symbol < self.size:
            raise ValueError(f"symbol must be in range 0..{self.size - 1}, got {symbol}")
        self._symbols.append(symbol)
        self._count(len(self._symbols) - 1, +1)
        if len(self._symbols) > self.span:
            self._count(0, -1)
            self._symbols.popleft()

    def _count(self, index: int, step: int) -> None:
        """Add (``step`` +1) or take away (-1) the n-grams that *start* or end at ``index``:
        those ending there when added (the newest), those starting there when removed (the
        oldest), so each n-gram is counted while all its symbols are in the span."""
        symbols = self._symbols
        if step > 0:
            self._unigram[symbols[index]] += 1
            for k in range(1, self.order):
                if index - k < 0:
                    break
                self._bump(tuple(symbols[i] for i in range(index - k, index)), symbols[index], 1)
        else:
            self._unigram[symbols[index]] -= 1
            for k in range(1, self.order):
                if index + k >= len(symbols):
                    break
                self._bump(tuple(symbols[i] for i in range(index, index + k)), symbols[index + k], -1)

    def _bump(self, context: tuple[int, ...], symbol: int, step: int) -> None:
        row = self._rows.get(context)
        if row is None:
            row = self._rows[context] = np.zeros(self.size, dtype=np.float64)
            self._types[context] = 0
        before = row[symbol]
        row[symbol] = before + step
        if before == 0 and step > 0:
            self._types[context] += 1
        elif row[symbol] == 0:
            self._types[context] -= 1
            if self._types[context] == 0:
                del self._rows[context], self._types[context]

    def predict(self, history: Iterable[int]) -> tuple[np.ndarray, float]:
        """The next symbol's probabilities after ``history`` (its last ``order - 1`` count)
        and the memory's confidence in them (0 when it has counted nothing)."""
        p, confidence = self._uniform, 0.0
        total = float(self._unigram.sum())
        if total:
            types = float(np.count_nonzero(self._unigram))
            p = (self._unigram + types * p) / (total + types)
            confidence = total / (total + types)
        context = tuple(int(h) for h in history)[-(self.order - 1):] if self.order > 1 else ()
        for k in range(1, len(context) + 1):
            key = context[len(context) - k:]
            row = self._rows.get(key)
            if row is None:
                break  # a longer context unseen cannot have been seen either
            n, types = float(row.sum()), self._types[key]
            p = (row + types * p) / (n + types)
            confidence = n / (n + types)
        return p, confidence

    def distribution(self, history: Iterable[int]) -> np.ndarray:
        return self.predict(history)[0]

    def mixed(self, model: np.ndarray, history: Iterable[int], weight: float) -> np.ndarray:
        """``model`` mixed with this memory after ``history`` at ``weight`` × its confidence."""
        if weight <= 0 or not self._symbols:
            return model
        p, confidence = self.predict(history)
        return mix(model, p, weight * confidence)


def mix(model: np.ndarray, memory: np.ndarray, weight: float) -> np.ndarray:
    """``(1 − weight) · model + weight · memory``: still a distribution."""
    return model if weight <= 0 else (1.0 - weight) * model + weight * memory
