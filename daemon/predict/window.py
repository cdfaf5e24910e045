"""Window: the last 32 token ids the model predicts from.

Tokens outside the model's vocabulary are dropped (as the training pipeline drops them).
Before 32 tokens have been played the window is left-padded from a primer:

- the primer tokens given (e.g. read from ``--primer FILE.mid``), those in the
  vocabulary, repeated cyclically so the window ends on the primer's last token;
- else a fixed sequence derived from the vocabulary: ids ``0, 1, 2, ...`` in order
  (wrapping when the vocabulary is smaller than the window). It is deterministic, so a
  seeded run is repeatable, and it uses only what every bundle has.

The ids live in one preallocated int32 array, shifted in place on each push, so the hot
path allocates nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .bundle import WINDOW


def primer_ids(vocabulary: Mapping[str, int], primer: Sequence[str] | None = None,
               size: int = WINDOW) -> list[int]:
    """The ``size`` ids that fill the window before anything is played."""
    known = [vocabulary[t] for t in primer or () if t in vocabulary]
    if not known:
        known = [i % len(vocabulary) for i in range(size)]
    return [known[(i - size) % len(known)] for i in range(size)]


class Window:
    """The last ``size`` token ids, oldest first."""

    def __init__(self, vocabulary: Sequence[str], primer: Sequence[str] | None = None,
                 size: int = WINDOW) -> None:
        self.vocabulary = tuple(vocabulary)
        self._index = {token: i for i, token in enumerate(self.vocabulary)}
        self.ids = np.array(primer_ids(self._index, primer, size), dtype=np.int32)

    def push(self, token: str) -> bool:
        """Append a token; returns False (and changes nothing) when it is not in the vocabulary."""
        token_id = self._index.get(token)
        if token_id is None:
            return False
        self.push_id(token_id)
        return True

    def push_id(self, token_id: int) -> None:
        if not 0 <= token_id < len(self.vocabulary):
            raise ValueError(f"token id must be in range 0..{len(self.vocabulary) - 1}, got {token_id}")
        self.ids[:-1] = self.ids[1:]
        self.ids[-1] = token_id

    def copy(self) -> Window:
        """An independent window with the same ids (a duet answer continues in a copy)."""
        other = Window.__new__(Window)
        other.vocabulary = self.vocabulary
        other._index = self._index
        other.ids = self.ids.copy()
        return other

    def tokens(self) -> list[str]:
        return [self.vocabulary[i] for i in self.ids]
