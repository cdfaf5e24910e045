"""Head-by-head sampling, as the engine drew each head's class before
:class:`mididuet.daemon.predict.heads.HeadSampler`: the reference its test compares it
with, and the baseline its benchmark measures it against."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from mididuet.daemon.engine.engine import RHYTHM_HEADS
from mididuet.daemon.predict.bundle import Prediction
from mididuet.daemon.predict.memory import NGramMemory
from mididuet.daemon.predict.sampler import Sampler, tempered


def one_by_one(prediction: Prediction, token_id: int, sampler: Sampler, memories: Mapping[str, NGramMemory],
               weight: float, temperature: float) -> dict[str, int]:
    """Each head on its own, in the bundle's order, one draw each; the rhythm heads at
    ``temperature``."""
    classes = {}
    for name in prediction.heads:
        row = prediction.head(name, token_id)
        if name in memories:
            row = memories[name].mixed(row, weight)
        if sampler.method == "greedy":
            classes[name] = int(np.argmax(row))
            continue
        cumulative = np.cumsum(tempered(row, temperature if name in RHYTHM_HEADS else 1.0))
        pick = int(np.searchsorted(cumulative, sampler.rng.random() * cumulative[-1], side="right"))
        classes[name] = min(pick, len(cumulative) - 1)
    return classes
