"""A head's temperature: chosen where it fits the music best, and baked into a real Keras
network's weights so the exported model plays the flattened (or sharpened) head."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mididuet.daemon.music.expression import DEFAULT, HEADS
from mididuet.training.cli import train_parser
from mididuet.training.temperature import (
    best_temperature,
    temperature_text,
    tempered,
    tempered_nll,
)


def _over_confident(n: int, classes: int, factor: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Targets drawn from softmax(z), and a model's probabilities softmax(factor · z): a head
    surer (factor > 1) or less sure (< 1) than the music it is scored on, by ``factor``."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, (n, classes))
    truth = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    targets = np.minimum((truth.cumsum(axis=1) < rng.random((n, 1))).sum(axis=1), classes - 1)  # inverse CDF
    sure = np.exp(factor * z)
    return sure / sure.sum(axis=1, keepdims=True), targets


@pytest.mark.parametrize("factor", [0.6, 1.0, 1.6])
def test_the_best_temperature_undoes_a_known_over_confidence(factor: float) -> None:
    probs, targets = _over_confident(10000, 12, factor)
    temperature, nll = best_temperature(probs, targets)
    assert temperature == pytest.approx(factor, rel=0.06)
    assert nll == pytest.approx(tempered_nll(probs, targets, temperature))
    # The minimum on a fine grid: the golden-section search found the one the convex curve has.
    grid = np.linspace(0.3, 3.0, 55)
    assert nll <= min(tempered_nll(probs, targets, t) for t in grid) + 1e-6
    assert nll <= tempered_nll(probs, targets, 1.0)


def test_tempering_keeps_distributions_and_order() -> None:
    probs, _ = _over_confident(50, 7, 1.0)
    for temperature in (0.5, 1.0, 2.0):
        out = tempered(probs, temperature)
        assert np.allclose(out.sum(axis=1), 1.0)
        assert (out.argmax(axis=1) == probs.argmax(axis=1)).all()
    assert np.allclose(tempered(probs, 1.0), probs)
    assert (tempered(probs, 2.0).max(axis=1) < probs.max(axis=1)).all(), "T > 1 flattens"
    assert temperature_text(1 / 0.2) == "≥ 5.00" and temperature_text(1.3) == "1.30", "an edge is a bound"
    with pytest.raises(ValueError, match="no targets"):
        best_temperature(probs[:0], np.zeros(0, int))


def test_the_command_line_collects_head_temperatures() -> None:
    args = train_parser().parse_args(["--out", "x.onnx", "--head-temperature", "length=1.2",
                                      "--head-temperature", "delay=0.9"])
    assert dict(args.head_temperature) == {"length": 1.2, "delay": 0.9}


def test_head_temperatures_need_the_heads(tmp_path: Path) -> None:
    from mididuet.training.train import TrainOptions, run_training

    with pytest.raises(ValueError, match="--head-temperature needs --expressive"):
        run_training(TrainOptions(data=tmp_path / "no-corpus-read", out=tmp_path / "x.onnx",
                                  head_temperatures={"length": 1.2}))  # refused before any corpus is read


@pytest.mark.parametrize("arch", ["seed", "wavenet"])
def test_a_baked_temperature_tempers_that_head_alone_in_the_fit_and_the_export(arch: str, small_corpus: Path) -> None:
    from mididuet.training.corpus import read_corpus
    from mididuet.training.dataset import build_dataset
    from mididuet.training.model import build_network
    from mididuet.training.temperature import apply_head_temperatures
    from mididuet.training.train import check_last_position, held_out, last_position

    ds = build_dataset(read_corpus(small_corpus).pieces, val_fraction=0.4, min_count=3, expressive=True)
    net = build_network(arch, len(ds.vocabulary), DEFAULT)
    rng = np.random.default_rng(1)
    for head in HEADS:  # the token tables start at zero; a trained one is not
        table = net.fit.get_layer(f"{head}_token")
        table.set_weights([rng.normal(0, 1, w.shape).astype(np.float32) for w in table.get_weights()])
    held = held_out(net, ds)
    sample = {name: values[:256] for name, values in held.inputs.items()}
    before = last_position(net, net.fit.predict(sample, verbose=0))
    apply_head_temperatures(net.fit, {"length": 1.5, "velocity": 0.8})
    after = last_position(net, net.fit.predict(sample, verbose=0))
    np.testing.assert_allclose(after["length"], tempered(before["length"], 1.5), atol=1e-5)
    np.testing.assert_allclose(after["velocity"], tempered(before["velocity"], 0.8), atol=1e-5)
    assert not np.allclose(after["length"], before["length"], atol=1e-3)
    for name in ("probs", *(h for h in HEADS if h not in ("length", "velocity"))):
        np.testing.assert_array_equal(after[name], before[name], err_msg=name)
    check_last_position(net, net.export(), held)  # the export copies the tempered weights
