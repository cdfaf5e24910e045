"""How the chosen token is played: every head's class drawn in one pass.

A format-2 bundle gives each head the window's logits and a table of what each token adds
to them (:mod:`.bundle`). Once the token is chosen, a head's distribution is the softmax
of its logits plus that token's row, mixed with the session memory for the heads it keeps,
sharpened or flattened for the rhythm heads (the rhythm temperature), and one class is
drawn from it. Head by head that is a dozen small numpy calls each, and they were most of
a decision's Python time; :class:`HeadSampler` lays the heads end to end in one vector and
makes each call once for all of them: the memories' mixes too (their parts change once a
token, when the memories count it), and the rhythm temperature as one power with an
exponent per class (1 for the heads it leaves alone). The draws are the ones head-by-head
sampling makes, up to rounding: one uniform number per head, in the bundle's order of
heads, from the token sampler's generator, and ``searchsorted`` on each head's part of one
cumulative sum.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import numpy as np

from .bundle import Prediction
from .memory import NGramMemory
from .sampler import TINY, Sampler


class HeadSampler:
    """The heads of one bundle, end to end: ``heads`` in the bundle's order, ``tables``
    each head's ``[V, C]``; the heads in ``tempered`` are drawn at the rhythm temperature."""

    def __init__(self, heads: Sequence[str], tables: Mapping[str, np.ndarray], tempered: Collection[str]) -> None:
        self.heads = tuple(heads)
        sizes = np.array([tables[name].shape[1] for name in self.heads], dtype=np.intp)
        self.sizes = sizes
        self.starts = np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.intp)
        self.ends = self.starts + sizes
        self._bounds = np.concatenate((self.starts, self.ends))  # one gather for both ends
        self.segment = np.repeat(np.arange(len(self.heads)), sizes)  # each class's head
        self.slices = {name: slice(int(a), int(b)) for name, a, b in zip(self.heads, self.starts, self.ends,
                                                                         strict=True)}
        self.table = np.concatenate([tables[name] for name in self.heads], axis=1)
        total = int(sizes.sum())
        self._is_tempered = np.zeros(total, dtype=bool)
        for name in self.heads:
            if name in tempered:
                self._is_tempered[self.slices[name]] = True
        self._exponents = (1.0, np.ones(total))  # (temperature, each class's exponent at it)
        # The memories' mixes laid end to end: p · keep + term, one pair of calls for every
        # head; a head's part changes only when its memory's mix does (once per token).
        self._keep = np.ones(total)
        self._term = np.zeros(total)
        self._mixes: dict[str, tuple[float, float, np.ndarray] | None] = {}
        self._cumulative = np.zeros(total + 1)
        self._drawn_from = np.zeros(total)

    def distributions(self, prediction: Prediction, token_id: int) -> np.ndarray:
        """Every head's distribution if ``token_id`` is played, end to end (``[ΣC]``)."""
        given = prediction.logits
        if given is None or tuple(prediction.heads) != self.heads:  # not a bundle's, or its heads in another order
            given = np.concatenate([prediction.heads[name] for name in self.heads])
        logits = given + self.table[token_id]
        logits -= np.maximum.reduceat(logits, self.starts)[self.segment]
        p = np.exp(logits, dtype=np.float64)  # as bundle.softmax: the model's float32, exp in float64
        p /= np.add.reduceat(p, self.starts)[self.segment]
        return p

    def drawn_from(self, name: str) -> np.ndarray:
        """Head ``name``'s distribution as the last :meth:`sample` drew from it (memory mixed
        in, the rhythm heads tempered)."""
        return self._drawn_from[self.slices[name]].copy()

    def mix(self, p: np.ndarray, memories: Mapping[str, NGramMemory], weight: float) -> None:
        """Mix each head's part of ``p`` (end to end, as :meth:`distributions` gives it) with
        its memory in ``memories`` at ``weight``, in place; the others stay as they are."""
        if self.follow(memories, weight):
            p *= self._keep
            p += self._term

    def follow(self, memories: Mapping[str, NGramMemory], weight: float) -> bool:
        """Bring the end-to-end mix up to date with ``memories`` (True if any head mixes).
        :meth:`mix` does it too; the engine calls it once a token is counted, after that
        token's notes (as the memories' own ``prime``), so a decision finds it done."""
        mixing = False
        for name in self.heads:
            memory = memories.get(name)
            mix = memory.mixing(weight) if memory is not None else None
            # Its memory counted a symbol, the weight changed, or its memory joined or left.
            if mix is not self._mixes.get(name):
                part = self.slices[name]
                self._keep[part], self._term[part] = (1.0, 0.0) if mix is None else mix[1:]
                self._mixes[name] = mix
            mixing = mixing or mix is not None
        return mixing

    def _exponents_at(self, temperature: float) -> np.ndarray:
        if self._exponents[0] != temperature:
            self._exponents = (temperature, np.where(self._is_tempered, 1.0 / temperature, 1.0))
        return self._exponents[1]

    def sample(self, prediction: Prediction, token_id: int, sampler: Sampler,
               memories: Mapping[str, NGramMemory], weight: float, temperature: float) -> dict[str, int]:
        """One class per head for ``token_id``: each row mixed with its head's memory (at
        ``weight``), the tempered heads at ``temperature``; greedy takes the likeliest."""
        p = self.distributions(prediction, token_id)
        self._drawn_from = p
        self.mix(p, memories, weight)
        if sampler.method == "greedy":
            return {name: int(p[self.slices[name]].argmax()) for name in self.heads}
        if temperature != 1.0:  # as sampler.tempered does, with x ** 1.0 = x for the heads it leaves alone
            np.maximum(p, TINY, out=p, where=self._is_tempered)
            p **= self._exponents_at(temperature)
        cumulative = self._cumulative
        p.cumsum(out=cumulative[1:])
        ends = cumulative.take(self._bounds)
        before, after = ends[:len(self.heads)], ends[len(self.heads):]
        targets = before + sampler.rng.random(len(self.heads)) * (after - before)
        picks = cumulative[1:].searchsorted(targets, side="right") - self.starts
        return dict(zip(self.heads, np.minimum(picks, self.sizes - 1).tolist(), strict=True))
