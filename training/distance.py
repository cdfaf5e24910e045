"""How far apart two histograms are: the Jensen–Shannon distance that the decoding and
answers tables report."""

from __future__ import annotations

import numpy as np


def js_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen–Shannon distance, base 2: sqrt of the JS divergence, in [0, 1]."""
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / m[nz])))

    return float(np.sqrt(max((kl(p) + kl(q)) / 2, 0.0)))
