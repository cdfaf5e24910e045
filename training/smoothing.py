"""Neighbour smoothing: an ordinal head trained toward its target class and, a little, the
classes beside it.

The length's classes are steps of one log grid (1/4 … 16 pulses), and where a played
length falls between two steps is a matter of milliseconds and pedalling. Trained on the
exact class, the head grew surer than held-out pieces bear out (every split measured
preferred it flattened, ``docs/model-quality.md``). With ``--head-smoothing length=ε`` its
training target keeps 1 − ε on the class and shares ε between the two beside it (all of ε
to the one neighbour at an end of the grid). Only training's loss changes: the held-out
NLL, early stopping and every figure still score the true class, and the bundle is the same
kind of bundle. At 0.1 it took the length's over-confidence away on both splits measured,
but lowered its NLL only on the development one, so the shipped model does not use it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import numpy as np

from .loss_weights import checked_per_head

# ε is the share moved off the target class; at 0.5 or more a neighbour would outweigh it.
MAX_SMOOTHING = 0.5
# The heads whose classes are not steps of one scale: the bass is which of the chord's
# pitch classes is lowest, so its neighbours by index are not near it.
UNORDERED = ("bass",)


def checked_smoothing(smoothing: Mapping[str, float] | None, heads: Collection[str]) -> dict[str, float]:
    """Each head's ε, refused by name when the head is unknown or unordered, or ε is
    outside (0, 0.5)."""
    for name in smoothing or {}:
        if name in UNORDERED and name in heads:
            raise ValueError(f"the {name} head's classes are not ordered, so they have no neighbours to smooth "
                             f"toward; smooth one of {', '.join(h for h in heads if h not in UNORDERED)}")
    return checked_per_head(smoothing, heads, lambda e: 0 < e < MAX_SMOOTHING,
                            f"a head's smoothing must be above 0 and below {MAX_SMOOTHING:g}")


def neighbour_targets(size: int, epsilon: float) -> np.ndarray:
    """Row k: the training target for class k of ``size`` ordered classes, ``[size, size]``."""
    if size < 2:
        raise ValueError(f"neighbour smoothing needs at least 2 classes, got {size}")
    rows = np.eye(size) * (1.0 - epsilon)
    for k in range(size):
        neighbours = [j for j in (k - 1, k + 1) if 0 <= j < size]
        rows[k, neighbours] += epsilon / len(neighbours)
    return rows.astype(np.float32)


def smoothed_crossentropy(size: int, epsilon: float, ignore_class: int) -> Any:
    """A Keras loss like ``SparseCategoricalCrossentropy(ignore_class=...)`` (probabilities
    in, integer targets, ignored targets masked out of the mean), whose target for class k is
    row k of :func:`neighbour_targets`."""
    import keras
    from keras import ops

    table = neighbour_targets(size, epsilon)

    class NeighbourSmoothed(keras.losses.Loss):
        def __init__(self) -> None:
            # Summed, each target's loss already divided by how many count: the mean over
            # the targets that count, as Keras's own sparse loss with ignore_class takes.
            # (A "sum" skips the per-replica scaling of a tf.distribute strategy; the
            # trainer runs on one CPU device.)
            super().__init__(name=f"neighbour_smoothed_{epsilon:g}", reduction="sum")

        def call(self, y_true: Any, y_pred: Any) -> Any:
            if len(y_true.shape) == len(y_pred.shape) and y_true.shape[-1] == 1:
                y_true = ops.squeeze(y_true, axis=-1)
            y_true = ops.cast(y_true, "int32")
            valid = ops.not_equal(y_true, ignore_class)
            targets = ops.take(ops.convert_to_tensor(table, dtype=y_pred.dtype), ops.where(valid, y_true, 0), axis=0)
            log_p = ops.log(ops.clip(y_pred, keras.config.epsilon(), 1.0))
            per_target = ops.where(valid, -ops.sum(targets * log_p, axis=-1), 0.0)
            counted = ops.maximum(ops.sum(ops.cast(valid, y_pred.dtype)), 1.0)
            return per_target / counted

    return NeighbourSmoothed()
