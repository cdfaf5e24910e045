"""Each expressive head's share of the training loss, beside the token's 1.0 (keras-free:
the card and the command line read it too)."""

from __future__ import annotations

from collections.abc import Mapping

from mididuet.daemon.music.expression import Encoding

# Each head's share, and what early stopping weighs every head at whatever training did.
# The heads share one stack, so a head weighed more takes from the others: the velocity at
# 2.0 gained what the rhythm heads and the length lost (docs/model-quality.md, "The heads'
# shares of one stack").
HEAD_LOSS_WEIGHT = 0.5


def training_weights(overrides: Mapping[str, float] | None, encoding: Encoding) -> dict[str, float]:
    """Each head's loss weight in training: :data:`HEAD_LOSS_WEIGHT`, or its override."""
    weights = dict.fromkeys(encoding.heads, HEAD_LOSS_WEIGHT)
    for name, weight in (overrides or {}).items():
        if name not in weights:
            raise ValueError(f"no head named {name!r}; the heads are {', '.join(encoding.heads)}")
        if not weight >= 0:
            raise ValueError(f"a head's loss weight must be 0 or more, got {name}={weight}")
        weights[name] = float(weight)
    return weights
