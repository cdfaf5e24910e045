"""How the chosen token is played: every head's class drawn in one pass.

A format-2 bundle gives each head the window's logits and a table of what each token adds
to them (:mod:`.bundle`). Once the token is chosen, a head's distribution is the softmax
of its logits plus that token's row, mixed with the session memory for the heads it keeps,
sharpened or flattened for the rhythm heads (the rhythm temperature), and one class is
drawn from it. Head by head that is a dozen small numpy calls each, and they were most of
a decision's Python time; :class:`HeadSampler` lays the heads end to end in one vector and
makes each call once for all of them. The draws are the ones head-by-head sampling makes,
up to rounding: one uniform number per head, in the bundle's order of heads, from the token
sampler's generator, and ``searchsorted`` on each head's part of one cumulative sum.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import numpy as np

from .bundle import Prediction
from .memory import NGramMemory
from .sampler import Sampler, tempered


class HeadSampler:
    """The heads of one bundle, end to end: ``heads`` in the bundle's order, ``tables``
    each head's ``[V, C]``; the heads in ``tempered`` are drawn at the rhythm temperature."""

    def __init__(self, heads: Sequence[str], tables: Mapping[str, np.ndarray], tempered: Collection[str]) -> None:
        self.heads = tuple(heads)
        sizes = np.array([tables[name].shape[1] for name in self.heads], dtype=np.intp)
        self.sizes = sizes
        self.starts = np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.intp)
        self.ends = self.starts + sizes
        self.segment = np.repeat(np.arange(len(self.heads)), sizes)  # each class's head
        self.slices = {name: slice(int(a), int(b)) for name, a, b in zip(self.heads, self.starts, self.ends,
                                                                         strict=True)}
        self.table = np.concatenate([tables[name] for name in self.heads], axis=1)
        self.tempered = np.concatenate([np.arange(self.slices[name].start, self.slices[name].stop)
                                        for name in self.heads if name in tempered] or [np.zeros(0, np.intp)])
        self._cumulative = np.zeros(int(sizes.sum()) + 1)
        self._drawn_from = np.zeros(int(sizes.sum()))

    def distributions(self, prediction: Prediction, token_id: int) -> np.ndarray:
        """Every head's distribution if ``token_id`` is played, end to end (``[ΣC]``)."""
        logits = np.concatenate([prediction.heads[name] for name in self.heads]) + self.table[token_id]
        logits -= np.maximum.reduceat(logits, self.starts)[self.segment]
        p = np.exp(logits, dtype=np.float64)  # as bundle.softmax: the model's float32, exp in float64
        p /= np.add.reduceat(p, self.starts)[self.segment]
        return p

    def drawn_from(self, name: str) -> np.ndarray:
        """Head ``name``'s distribution as the last :meth:`sample` drew from it (memory mixed
        in, the rhythm heads tempered)."""
        return self._drawn_from[self.slices[name]].copy()

    def sample(self, prediction: Prediction, token_id: int, sampler: Sampler,
               memories: Mapping[str, NGramMemory], weight: float, temperature: float) -> dict[str, int]:
        """One class per head for ``token_id``: each row mixed with its head's memory (at
        ``weight``), the tempered heads at ``temperature``; greedy takes the likeliest."""
        p = self.distributions(prediction, token_id)
        self._drawn_from = p
        for name, memory in memories.items():
            memory.mix_into(p[self.slices[name]], weight)
        if sampler.method == "greedy":
            return {name: int(np.argmax(p[self.slices[name]])) for name in self.heads}
        if temperature != 1.0 and len(self.tempered):
            p[self.tempered] = tempered(p[self.tempered], temperature)
        cumulative = self._cumulative
        np.cumsum(p, out=cumulative[1:])
        before, after = cumulative[self.starts], cumulative[self.ends]
        targets = before + sampler.rng.random(len(self.heads)) * (after - before)
        picks = np.searchsorted(cumulative[1:], targets, side="right") - self.starts
        return dict(zip(self.heads, np.minimum(picks, self.sizes - 1).tolist(), strict=True))
