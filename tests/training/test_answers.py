"""``mididuet-train answers``: each phrase answered with draws of its own."""

from __future__ import annotations

import dataclasses

from mididuet.daemon.engine.settings import EngineSettings
from mididuet.daemon.predict.bundle import ModelRunner, shipped_model_path
from mididuet.training.answers import answer, phrase_settings, phrases

from .conftest import CHOPIN


def test_each_phrase_is_answered_with_its_own_draws() -> None:
    """One seed for every phrase gave every answer the same random numbers, so the table
    measured one sequence of draws; the daemon's generator runs on between answers."""
    model = ModelRunner(shipped_model_path())
    phrase = phrases(CHOPIN / "chpn-p7.mid")[0]  # a piece the shipped model held out
    settings = EngineSettings(seed=1)
    first, again, second = (answer(model, phrase_settings(settings, i), phrase) for i in (0, 0, 1))
    assert first.onsets and first == again, "one phrase and one index: the same answer"
    assert first != second, "the same call at another index is answered with other draws"
    assert [phrase_settings(settings, i).seed for i in range(3)] == [1, 2, 3]
    unseeded = dataclasses.replace(settings, seed=None)
    assert phrase_settings(unseeded, 5) is unseeded  # no seed: the engine's own entropy
