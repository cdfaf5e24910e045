"""A head's temperature: its distribution p made p^(1/T), renormalised, so T > 1 flattens a
head that is surer than it should be.

A head's logits are its context's (a ``Dense``) plus its token's row (an ``Embedding``),
so T is baked into a bundle by dividing both by T before export
(:func:`apply_head_temperatures`): the exported graph, its check against Keras and the
daemon are unchanged. T is chosen where the shipped split's held-out pieces are not: on a
development run's (:func:`best_temperature`, printed by ``mididuet-train evaluate``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from mididuet.daemon.predict.sampler import tempered as power

from .evaluate import nll_of
from .loss_weights import checked_per_head

# β = 1/T is searched in this range: T from 0.25 to 5, beyond any temperature worth baking in.
BETA_RANGE = (0.2, 4.0)


def tempered(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Each row of ``probs`` (``[..., C]``) raised to 1/T, as the daemon's sampler tempers
    the token, and renormalised."""
    out = power(probs, temperature)
    return out / out.sum(axis=-1, keepdims=True)


def tempered_nll(probs: np.ndarray, targets: np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood of ``targets`` under ``probs`` at temperature T."""
    return nll_of(tempered(probs, temperature)[np.arange(len(targets)), targets])


def best_temperature(probs: np.ndarray, targets: np.ndarray, tolerance: float = 1e-4) -> tuple[float, float]:
    """The T that minimises the NLL of ``targets`` under ``probs`` (``[N, C]``), and that NLL.

    The NLL is convex in β = 1/T (a log-sum-exp less a linear term), so a golden-section
    search over β finds its one minimum."""
    if len(targets) == 0:
        raise ValueError("no targets to choose a temperature on")
    ratio = (math.sqrt(5) - 1) / 2
    lo, hi = BETA_RANGE
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = tempered_nll(probs, targets, 1 / a), tempered_nll(probs, targets, 1 / b)
    while hi - lo > tolerance:
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = tempered_nll(probs, targets, 1 / a)
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = tempered_nll(probs, targets, 1 / b)
    beta = (lo + hi) / 2
    return 1 / beta, tempered_nll(probs, targets, 1 / beta)


def temperature_text(temperature: float, tolerance: float = 1e-3) -> str:
    """A best temperature as a table shows it: at the searched range's edge, as a bound
    (the best lies there or beyond)."""
    lowest, highest = 1 / BETA_RANGE[1], 1 / BETA_RANGE[0]
    if temperature >= highest * (1 - tolerance):
        return f"≥ {highest:.2f}"
    if temperature <= lowest * (1 + tolerance):
        return f"≤ {lowest:.2f}"
    return f"{temperature:.2f}"


def checked_temperatures(temperatures: Mapping[str, float], heads: tuple[str, ...]) -> dict[str, float]:
    """``temperatures`` for heads that exist, each a finite number > 0, or a ValueError that says which is not."""
    return checked_per_head(temperatures, heads, lambda t: math.isfinite(t) and t > 0,
                            "a head's temperature must be a finite number above 0")


def apply_head_temperatures(fit: Any, temperatures: Mapping[str, float]) -> None:
    """Divide each named head's logits by its T in the fit model's weights: the context's
    ``Dense`` (kernel and bias) and the token's table (``Embedding``), which the export copies."""
    for name, temperature in temperatures.items():
        for layer in (fit.get_layer(f"{name}_context"), fit.get_layer(f"{name}_token")):
            layer.set_weights([w / temperature for w in layer.get_weights()])
