"""Decoding measurements: loop detection, pitch-class histograms and their distance."""

import numpy as np
import pytest

from mididuet.daemon.predict.sampler import longest_loop
from mididuet.training.decoding import loop_mask, pitch_class_histogram
from mididuet.training.distance import js_distance


def test_loop_mask_marks_patterns_repeated_more_than_four_times():
    assert not loop_mask(list("abababab")).any()  # "ab" 4 times: allowed
    mask = loop_mask(list("xababababab" + "y"))  # "ab" 5 times
    assert mask.tolist() == [False] + [True] * 10 + [False]
    assert loop_mask(list("ccccc")).all() and not loop_mask(list("cccc")).any()
    assert loop_mask(list("abcdabcdabcdabcdabcd")).all()  # a 4-token pattern 5 times


@pytest.mark.parametrize("seed", range(5))
def test_loop_mask_agrees_with_the_daemons_longest_loop(seed):
    tokens = list(np.random.default_rng(seed).choice(list("ab"), 60))
    _, repeats = longest_loop(tokens)
    assert loop_mask(tokens).any() == (repeats > 4)


def test_pitch_class_histogram_counts_each_chord_pitch_class_once():
    hist = pitch_class_histogram(["C4", "C5", "0.4.7", "0"])
    assert hist[0] == 4 and hist[4] == 1 and hist[7] == 1 and hist.sum() == 6


def test_js_distance_is_zero_for_equal_and_one_for_disjoint_histograms():
    p = np.array([1.0, 2, 3, 0])
    assert js_distance(p, 2 * p) == pytest.approx(0, abs=1e-7)
    assert js_distance(np.array([1.0, 0]), np.array([0.0, 1])) == pytest.approx(1)
    assert 0 < js_distance(np.array([1.0, 1]), np.array([1.0, 3])) < 1


def test_the_sampler_without_its_guard_takes_the_looping_token():
    from mididuet.daemon.predict.sampler import Sampler

    sure = np.array([0.97, 0.01, 0.01, 0.01])
    history = np.zeros(8, dtype=np.int64)  # token 0 four times more would loop
    guarded = Sampler("temperature", seed=0)
    assert all(guarded.sample(sure, history) != 0 for _ in range(50))
    free = Sampler("temperature", seed=0)
    free.guard = False
    assert any(free.sample(sure, history) == 0 for _ in range(50))


def test_no_guard_rows_run_the_engine_with_the_guard_off():
    """Through the daemon's engine with the shipped (format-2) model, the same seed: the
    run without the guard is the guarded one until the guard first acts, where it plays the
    token that repeats a figure a fifth time; from there it loops, the guarded run never."""
    from mididuet.daemon.predict.bundle import load_bundle
    from mididuet.training.decoding import Decoding, generate

    model = load_bundle()
    free = generate(model, Decoding("sharp, no guard", "temperature", temperature=0.3, guard=False), 300, seed=0)
    guarded = generate(model, Decoding("sharp", "temperature", temperature=0.3), 300, seed=0)
    assert longest_loop(guarded)[1] <= 4
    assert longest_loop(free)[1] > 4
    first = next(i for i, (a, b) in enumerate(zip(free, guarded, strict=True)) if a != b)
    assert first >= 4 and free[:first] == guarded[:first]
    assert longest_loop(free[:first + 1])[1] > 4 >= longest_loop(free[:first])[1]


def test_the_daemon_default_is_named_from_its_settings():
    from mididuet.daemon.engine.settings import EngineSettings
    from mididuet.training.decoding import DECODINGS

    defaults = [d for d in DECODINGS if d.name().endswith("(daemon default)")]
    assert len(defaults) == 1
    daemon = EngineSettings()
    assert (defaults[0].sampling, defaults[0].guard) == (daemon.sampling, True)
