"""Neighbour smoothing: an ordinal head's training target shares a little of its class with
the classes beside it. The loss is checked against numpy's arithmetic and Keras's own
sparse loss, and a real Keras head trained with it is less sure where the data are sharp."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mididuet.daemon.music.expression import DEFAULT, HEADS
from mididuet.training.expression import IGNORE
from mididuet.training.smoothing import neighbour_targets, smoothed_crossentropy


def test_each_target_row_shares_epsilon_with_its_neighbours() -> None:
    rows = neighbour_targets(5, 0.2)
    assert np.allclose(rows.sum(axis=1), 1.0)
    assert np.allclose(np.diag(rows), 0.8)
    assert rows[2].tolist() == pytest.approx([0, 0.1, 0.8, 0.1, 0])
    assert rows[0].tolist() == pytest.approx([0.8, 0.2, 0, 0, 0]), "an end gives its neighbour all of it"
    assert rows[4].tolist() == pytest.approx([0, 0, 0, 0.2, 0.8])
    assert np.array_equal(neighbour_targets(5, 0.0), np.eye(5))


def _batch(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(12), size=(6, 32)).astype(np.float32)
    targets = rng.integers(0, 12, size=(6, 32))
    targets[:, :7] = IGNORE  # as the delay's before a pulse is known
    return targets, probs


def test_the_loss_is_the_mean_over_counted_targets_of_the_smoothed_cross_entropy() -> None:
    import keras

    targets, probs = _batch()
    plain = keras.losses.SparseCategoricalCrossentropy(ignore_class=IGNORE)
    assert float(smoothed_crossentropy(12, 0.0, IGNORE)(targets, probs)) == pytest.approx(
        float(plain(targets, probs)), rel=1e-6), "at ε = 0 it is Keras's own loss, ignored targets and all"
    rows = neighbour_targets(12, 0.1)
    counted = targets != IGNORE
    expected = -(rows[targets[counted]] * np.log(probs[counted])).sum(axis=1).mean()
    assert float(smoothed_crossentropy(12, 0.1, IGNORE)(targets, probs)) == pytest.approx(expected, rel=1e-5)
    # The last position alone, as the seed architecture's heads are trained.
    last, at_last = targets[:, -1].copy(), probs[:, -1]
    last[::3] = IGNORE
    assert float(smoothed_crossentropy(12, 0.0, IGNORE)(last, at_last)) == pytest.approx(
        float(plain(last, at_last)), rel=1e-6)
    counted = last != IGNORE
    expected = -(rows[last[counted]] * np.log(at_last[counted])).sum(axis=1).mean()
    assert float(smoothed_crossentropy(12, 0.1, IGNORE)(last, at_last)) == pytest.approx(expected, rel=1e-5)


def _trained_head(epsilon: float) -> np.ndarray:
    """A softmax over 6 ordered classes, trained on inputs that say the class exactly."""
    import keras

    keras.utils.set_random_seed(0)
    classes = np.arange(1200) % 6
    x = np.eye(6, dtype=np.float32)[classes]
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(6, activation="softmax")])
    loss = (smoothed_crossentropy(6, epsilon, IGNORE) if epsilon
            else keras.losses.SparseCategoricalCrossentropy(ignore_class=IGNORE))
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=loss)
    model.fit(x, classes, epochs=20, batch_size=100, verbose=0)
    return model.predict(np.eye(6, dtype=np.float32), verbose=0)


def test_a_real_keras_head_trained_with_it_keeps_mass_beside_its_class() -> None:
    sharp, smoothed = _trained_head(0.0), _trained_head(0.2)
    assert np.diag(sharp).min() > 0.97, "without smoothing a class the input names grows sure"
    assert np.diag(smoothed) == pytest.approx(np.full(6, 0.8), abs=0.03), "smoothed, it learns the target rows"
    assert smoothed[2, 1] == pytest.approx(0.1, abs=0.03) and smoothed[2, 3] == pytest.approx(0.1, abs=0.03)
    assert smoothed[2, 5] < 0.02, "only the neighbours gain"
    assert (smoothed.argmax(axis=1) == np.arange(6)).all(), "the most likely class is still the target"


@pytest.mark.parametrize("arch", ["seed", "wavenet"])
def test_both_archs_compile_the_smoothed_head_and_no_other(arch: str) -> None:
    from mididuet.training.model import build_network

    net = build_network(arch, 20, DEFAULT, head_smoothing={"length": 0.1})
    losses = net.fit.loss
    assert losses["length"].name == "neighbour_smoothed_0.1"
    assert all(type(losses[name]).__name__ == "SparseCategoricalCrossentropy" for name in HEADS if name != "length")
    net.compile(3e-4)  # fine-tuning's fresh optimizer keeps it
    assert net.fit.loss["length"].name == "neighbour_smoothed_0.1"


def test_smoothing_needs_the_heads(tmp_path: Path) -> None:
    from mididuet.training.train import TrainOptions, run_training

    with pytest.raises(ValueError, match="--head-smoothing needs --expressive"):
        run_training(TrainOptions(data=tmp_path / "no-corpus-read", out=tmp_path / "x.onnx",
                                  head_smoothing={"length": 0.1}))
