"""Each expressive head's share of the training loss, beside the token's 1.0 (keras-free:
the card and the command line read it too)."""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from typing import Any

from mididuet.daemon.music.expression import Encoding

# Each head's share, and what early stopping weighs every head at whatever training did.
# The heads share one stack, so a head weighed more takes from the others: weighed 2.0, the
# velocity gained what the rhythm heads, the length and the octave lost
# (docs/model-quality.md, "The heads' shares of one stack").
HEAD_LOSS_WEIGHT = 0.5


def checked_per_head(settings: Mapping[str, float] | None, heads: Collection[str], valid: Callable[[float], bool],
                     rule: str) -> dict[str, float]:
    """A per-head option's values (weights, temperatures, smoothing) as floats, or a
    ValueError naming the unknown head or the value that breaks ``rule`` ("a head's X must
    be ...")."""
    checked: dict[str, float] = {}
    for name, value in (settings or {}).items():
        if name not in heads:
            raise ValueError(f"no head named {name!r}; the heads are {', '.join(heads)}")
        if not valid(value):
            raise ValueError(f"{rule}, got {name}={value}")
        checked[name] = float(value)
    return checked


def training_weights(overrides: Mapping[str, float] | None, encoding: Encoding) -> dict[str, float]:
    """Each head's loss weight in training: :data:`HEAD_LOSS_WEIGHT`, or its override."""
    return {**dict.fromkeys(encoding.heads, HEAD_LOSS_WEIGHT),
            **checked_per_head(overrides, encoding.heads, lambda w: math.isfinite(w) and w >= 0,
                               "a head's loss weight must be a finite number, 0 or more")}


def named_settings(settings: Mapping[str, float]) -> str:
    """``"length 1.2, spread 1.3"``: a per-head option as the log, the card and the quality
    table name it, by name (the bundle's facts are stored with sorted keys, so a card
    rewritten from them names the heads in the order the trainer's did)."""
    return ", ".join(f"{name} {settings[name]:g}" for name in sorted(settings))


def stopping_weight(facts: Mapping[str, Any]) -> float:
    """The weight early stopping gave every head, from a bundle's training facts (older
    bundles did not record it: it was the only weight there was)."""
    return float(facts.get("monitor_head_weight", HEAD_LOSS_WEIGHT))


def weighed_otherwise(facts: Mapping[str, Any]) -> str:
    """The heads a bundle's training weighed other than early stopping did, as the card and
    the quality table name them: ``"timing 1.5, velocity 2"`` (empty when none was)."""
    usual = stopping_weight(facts)
    weights: Mapping[str, float] = facts.get("head_weights") or {}
    return named_settings({name: weight for name, weight in weights.items() if weight != usual})
