"""Each expressive head's share of the training loss, beside the token's 1.0 (keras-free:
the card and the command line read it too)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from mididuet.daemon.music.expression import Encoding

# Each head's share, and what early stopping weighs every head at whatever training did.
# The heads share one stack, so a head weighed more takes from the others: weighed 2.0, the
# velocity gained what the rhythm heads, the length and the octave lost
# (docs/model-quality.md, "The heads' shares of one stack").
HEAD_LOSS_WEIGHT = 0.5


def training_weights(overrides: Mapping[str, float] | None, encoding: Encoding) -> dict[str, float]:
    """Each head's loss weight in training: :data:`HEAD_LOSS_WEIGHT`, or its override."""
    weights = dict.fromkeys(encoding.heads, HEAD_LOSS_WEIGHT)
    for name, weight in (overrides or {}).items():
        if name not in weights:
            raise ValueError(f"no head named {name!r}; the heads are {', '.join(encoding.heads)}")
        if not (math.isfinite(weight) and weight >= 0):
            raise ValueError(f"a head's loss weight must be a finite number, 0 or more, got {name}={weight}")
        weights[name] = float(weight)
    return weights


def stopping_weight(facts: Mapping[str, Any]) -> float:
    """The weight early stopping gave every head, from a bundle's training facts (older
    bundles did not record it: it was the only weight there was)."""
    return float(facts.get("monitor_head_weight", HEAD_LOSS_WEIGHT))


def weighed_otherwise(facts: Mapping[str, Any]) -> str:
    """The heads a bundle's training weighed other than early stopping did, as the card and
    the quality table name them: ``"timing 1.5, velocity 2"`` (empty when none was)."""
    usual = stopping_weight(facts)
    weights: Mapping[str, float] = facts.get("head_weights") or {}
    return ", ".join(f"{name} {weight:g}" for name, weight in weights.items() if weight != usual)
