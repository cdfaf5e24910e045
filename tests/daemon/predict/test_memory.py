"""The session memory: online n-gram counts, bounded, Witten–Bell smoothed, mixed by confidence."""

from __future__ import annotations

import numpy as np
import pytest

from mididuet.daemon.predict.memory import NGramMemory


def test_an_empty_memory_knows_nothing_and_changes_nothing() -> None:
    memory = NGramMemory(5)
    p, confidence = memory.predict([])
    assert np.allclose(p, 0.2) and confidence == 0.0
    model = np.array([0.5, 0.2, 0.1, 0.1, 0.1])
    assert memory.mixed(model, 0.9) is model


def test_a_motif_heard_is_expected_after_its_start() -> None:
    memory = NGramMemory(6)
    for symbol in [0, 1, 2, 3, 0, 1, 2, 4, 0, 1]:
        memory.observe(symbol)
    p, confidence = memory.predict([0, 1])
    assert p.argmax() == 2 and p[2] > 0.5, "0 1 was followed by 2 both times"
    assert 0 < confidence < 1
    assert np.isclose(p.sum(), 1)
    # Witten–Bell: after an unseen context it backs off to the shorter one, then the unigram.
    assert memory.predict([5, 0])[0].argmax() == 1
    assert memory.predict([5, 5])[0].argmax() in (0, 1)


def test_counts_match_a_fresh_memory_of_the_last_span_symbols() -> None:
    rng = np.random.default_rng(0)
    symbols = rng.integers(0, 7, 500).tolist()
    sliding = NGramMemory(7, span=64)
    for s in symbols:
        sliding.observe(s)
    fresh = NGramMemory(7, span=64)
    for s in symbols[-64:]:
        fresh.observe(s)
    assert len(sliding) == 64
    for history in ([], [3], symbols[-2:], [1, 2]):
        a, ca = sliding.predict(history)
        b, cb = fresh.predict(history)
        assert np.allclose(a, b) and ca == pytest.approx(cb)


def test_memory_is_bounded_whatever_the_session_length() -> None:
    memory = NGramMemory(50, span=200)
    rng = np.random.default_rng(1)
    for s in rng.integers(0, 50, 20_000):
        memory.observe(int(s))
    assert len(memory) == 200
    assert len(memory._rows) <= 2 * 200, "at most one context row per n-gram in the span"


def test_mixing_is_weighed_by_confidence_and_stays_a_distribution() -> None:
    memory = NGramMemory(4)
    for s in [0, 1] * 20:
        memory.observe(s)
    model = np.array([0.25, 0.25, 0.25, 0.25])
    mixed = memory.mixed(model, 0.5)  # after what it heard last: 0 1
    p, confidence = memory.predict([0, 1])
    assert np.allclose(mixed, (1 - 0.5 * confidence) * model + 0.5 * confidence * p) and np.isclose(mixed.sum(), 1)
    assert mixed.argmax() == 0 and confidence > 0.9, "0 1 was always followed by 0"
    assert np.allclose(memory.mixed(model, 0.0), model)
    memory.prime(0.5)
    assert np.allclose(memory.mixed(model, 0.5), mixed), "a primed mix is the same mix"


def test_a_mix_is_the_same_object_until_it_changes() -> None:
    """The heads' sampler keeps each memory's mix and copies it again only when the memory
    hands out another object: a new one after every symbol and at every new weight."""
    memory = NGramMemory(4)
    assert memory.mixing(0.9) is None, "an empty memory does not mix"
    memory.observe(1)
    first = memory.mixing(0.9)
    assert first is not None and memory.mixing(0.9) is first
    memory.observe(2)
    second = memory.mixing(0.9)
    assert second is not first and memory.mixing(0.9) is second
    assert memory.mixing(0.5) is not second
    assert memory.mixing(0.0) is None


def test_symbols_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError, match=r"symbol must be in range 0\.\.3"):
        NGramMemory(4).observe(4)
