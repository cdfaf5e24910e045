"""``mididuet-train answers``: each phrase answered with draws of its own."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import numpy as np

from mididuet.daemon.engine.settings import EngineSettings
from mididuet.daemon.music.midi_reader import Note
from mididuet.daemon.predict.bundle import ModelRunner, shipped_model_path
from mididuet.training.answers import (
    FEATURE_NAMES,
    Excerpt,
    _pedals_within,
    answer,
    feature_separation,
    features,
    ioi_ratio_distance,
    phrase_settings,
    phrases,
    ratios_of,
    summary,
    two_sample_accuracy,
)
from tests.training.conftest import CHOPIN


def test_each_phrase_is_answered_with_its_own_draws() -> None:
    """One seed for every phrase gave every answer the same random numbers, so the table
    measured one sequence of draws; the daemon's generator runs on between answers."""
    model = ModelRunner(shipped_model_path())
    phrase = phrases(CHOPIN / "chpn-p7.mid")[0]  # a piece the shipped model held out
    settings = EngineSettings(seed=1)
    first, again, second = (answer(model, phrase_settings(settings, i), phrase) for i in (0, 0, 1))
    assert first.onsets and first == again, "one phrase and one index: the same answer"
    assert first != second, "the same call at another index is answered with other draws"
    assert [phrase_settings(settings, i).seed for i in range(3)] == [100_000, 100_001, 100_002]
    again = dataclasses.replace(settings, seed=2)  # another run's phrases share no seed with this one's
    assert not {phrase_settings(settings, i).seed for i in range(2_000)} & {
        phrase_settings(again, i).seed for i in range(2_000)}
    unseeded = dataclasses.replace(settings, seed=None)
    assert phrase_settings(unseeded, 5) is unseeded  # no seed: the engine's own entropy


def test_a_rubato_no_one_hears_is_binned_with_the_equal_ratio() -> None:
    """Chopin's near-equal IOIs stray a median 0.4% either way; the grid's repeat exactly.
    Their IOI-ratio histograms must not tell them apart; a real change of value must."""
    steady = Excerpt(onsets=[0.0, 0.5, 1.0, 1.5, 2.0])
    rubato = Excerpt(onsets=[0.0, 0.5, 0.998, 1.494, 1.992])  # each IOI a little shorter
    dotted = Excerpt(onsets=[0.0, 0.75, 1.0, 1.75, 2.0])
    assert ioi_ratio_distance(ratios_of(steady), ratios_of(rubato)) < 1e-3
    assert ioi_ratio_distance(ratios_of(steady), ratios_of(dotted)) > 0.9


def test_the_tempo_figures_are_held_to_the_call() -> None:
    """The long waits and the lengths are counted in the call's median IOI, not the
    excerpt's own, which a slow answer would carry with it."""
    call = Excerpt(onsets=[0.0, 0.25, 0.5, 0.75, 1.0])  # a median IOI of 0.25 s
    answer = Excerpt(onsets=[1.5, 1.75, 3.0, 3.25], lengths=[0.5, 0.25, 0.75, 0.5], velocities=[64] * 4,
                     notes=[1] * 4)
    figures = summary([answer], [answer], [call])
    assert figures["slow_iois"] == 1 / 3  # 1.25 s is five of the call's IOIs; 0.25 s is one
    assert figures["length_per_call_pulse"] == 2.0  # (2 + 1 + 3 + 2) / 4


def test_each_feature_alone_says_how_far_it_tells_the_two_apart() -> None:
    """Excerpts alike in rhythm and articulation but not in dynamics: the velocity's spread
    separates them perfectly; a feature equal everywhere is left out."""
    def excerpt(spread: int, k: int) -> Excerpt:
        return Excerpt(onsets=[0.0, 0.5, 1.0, 1.5, 2.0], lengths=[0.5] * 5,
                       velocities=[64 + (-1) ** i * (spread + k) for i in range(5)], notes=[1] * 5)

    calm = [excerpt(2, k) for k in range(6)]
    wild = [excerpt(20, k) for k in range(6)]
    separation = feature_separation(calm, wild)
    assert len(FEATURE_NAMES) == len(features(calm[0]))
    assert separation["velocity sd"] == separation["velocity range"] == 1.0
    assert "nPVI" not in separation, "the same rhythm everywhere says nothing"


def test_the_two_sample_folds_keep_a_phrase_on_one_side() -> None:
    """An answer is compared with the continuation of the same call. Split apart by the
    folds, a pair that looks alike teaches the classifier the wrong label: identical pairs
    scored 0.29 that way, "more alike than alike". Grouped, they score exactly 0.5."""
    rng = np.random.default_rng(0)

    def excerpt() -> Excerpt:
        iois = rng.choice([0.125, 0.25, 0.375, 0.5], 16) * rng.uniform(0.5, 2)
        return Excerpt(onsets=np.concatenate([[0.0], np.cumsum(iois)])[:16].tolist(),
                       lengths=(iois * rng.uniform(0.5, 3, 16)).tolist(),
                       velocities=rng.integers(30, 90, 16).tolist(), notes=rng.integers(1, 4, 16).tolist())

    real = [excerpt() for _ in range(80)]
    copies = [dataclasses.replace(e) for e in real]
    assert two_sample_accuracy(real, copies) == 0.5
    others = [excerpt() for _ in range(80)]
    # One BLAS thread (the default, for speed) or the libraries' own: the same fits.
    assert two_sample_accuracy(real, others) == two_sample_accuracy(real, others, threads=None)


def test_chopin_rings_to_the_pedal_s_lift_but_a_call_ends_for_its_answer() -> None:
    """An excerpt's last notes under the pedal sound until the piece lifts it; cut at the
    last key-up, Chopin's lengths came out short. The call played to the engine still
    lifts it at its end: the answer waits for that."""
    notes = [Note(60, 64, Fraction(0), 0.0, 0.4), Note(64, 64, Fraction(1, 2), 0.5, 0.4)]
    pedals = [(0.0, True), (2.0, False), (3.0, True)]
    assert _pedals_within(pedals, notes) == [(0.0, True), (0.9, False)]
    assert _pedals_within(pedals, notes, to_lift=True) == [(0.0, True), (2.0, False)]
    unpedalled = [(0.0, True), (0.2, False)]
    assert _pedals_within(unpedalled, notes, to_lift=True) == [(0.0, True), (0.2, False), (0.9, False)]
