"""The heads' shares of the training loss: the defaults, the overrides the command line
gives, and that the Keras model really trains with them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mididuet.daemon.music.expression import DEFAULT, HEADS
from mididuet.training.cli import train_parser
from mididuet.training.loss_weights import HEAD_LOSS_WEIGHT, training_weights
from mididuet.training.smoothing import checked_smoothing
from mididuet.training.temperature import checked_temperatures


def test_every_head_has_a_weight_and_overrides_win() -> None:
    assert training_weights(None, DEFAULT) == dict.fromkeys(HEADS, HEAD_LOSS_WEIGHT)
    weights = training_weights({"timing": 1.5, "velocity": 0}, DEFAULT)
    assert list(weights) == list(HEADS)
    assert (weights["timing"], weights["velocity"], weights["delay"]) == (1.5, 0.0, HEAD_LOSS_WEIGHT)


CHECKS: dict[str, Callable[[dict[str, float]], object]] = {
    "weight": lambda given: training_weights(given, DEFAULT),
    "temperature": lambda given: checked_temperatures(given, HEADS),
    "smoothing": lambda given: checked_smoothing(given, HEADS)}


@pytest.mark.parametrize(("check", "given", "message"), [
    pytest.param(CHECKS[setting], given, message, id=f"{setting}-{given}")
    for setting, given, message in (
        ("weight", {"volume": 1.0}, "no head named 'volume'"), ("weight", {"delay": -1.0}, "0 or more"),
        ("weight", {"delay": float("nan")}, "0 or more"), ("weight", {"delay": float("inf")}, "finite"),
        ("temperature", {"volume": 1.2}, "no head named 'volume'"), ("temperature", {"length": 0.0}, "above 0"),
        ("temperature", {"length": -1.0}, "above 0"), ("temperature", {"length": float("nan")}, "finite"),
        ("smoothing", {"volume": 0.1}, "no head named 'volume'"), ("smoothing", {"length": 0.5}, "below 0.5"),
        ("smoothing", {"length": -0.1}, "above 0"), ("smoothing", {"length": 0.0}, "above 0"),
        ("smoothing", {"length": float("nan")}, "length=nan"), ("smoothing", {"bass": 0.1}, "not ordered"))])
def test_a_wrong_head_setting_is_refused_by_name(check: Callable[[dict[str, float]], object],
                                                 given: dict[str, float], message: str) -> None:
    """Each head's loss weight, temperature and smoothing, as training checks them."""
    with pytest.raises(ValueError, match=message):
        check(given)


@pytest.mark.parametrize(("option", "argument"), [
    *(("--head-weight", a) for a in ("volume=2", "velocity", "velocity=loud", "velocity=-1", "velocity=inf",
                                     "velocity=1e999")),
    *(("--head-temperature", a) for a in ("volume=1.2", "length", "length=warm", "length=0", "length=inf")),
    *(("--head-smoothing", a) for a in ("volume=0.1", "length=lots", "length=0.5", "length=0", "bass=0.1"))])
def test_the_command_line_refuses_a_wrong_head_setting(option: str, argument: str,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """Each head's loss weight, temperature (tests/training/test_head_temperature.py) and
    smoothing (tests/training/test_head_smoothing.py)."""
    with pytest.raises(SystemExit) as exited:
        train_parser().parse_args(["--out", "x.onnx", "--expressive", option, argument])
    assert exited.value.code == 2
    assert option in capsys.readouterr().err


def test_the_command_line_collects_head_weights() -> None:
    args = train_parser().parse_args(["--out", "x.onnx", "--head-weight", "timing=1.5", "--head-weight", "length=1"])
    assert dict(args.head_weight) == {"timing": 1.5, "length": 1.0}


def test_head_weights_need_the_heads(tmp_path: Path) -> None:
    from mididuet.training.train import TrainOptions, run_training

    options = TrainOptions(data=tmp_path / "no-corpus-read", out=tmp_path / "x.onnx", head_weights={"velocity": 2.0})
    with pytest.raises(ValueError, match="--head-weight needs --expressive"):
        run_training(options)  # refused before any corpus is read
    with pytest.raises(ValueError, match="no head named 'volume'"):
        run_training(TrainOptions(data=options.data, out=options.out, arch="wavenet", expressive=True,
                                  head_weights={"volume": 2.0}))


@pytest.mark.parametrize("arch", ["seed", "wavenet"])
def test_keras_trains_with_those_weights(arch: str) -> None:
    from mididuet.training.model import build_network

    net = build_network(arch, 20, DEFAULT, head_weights={"timing": 1.5})
    loss_weights = net.fit.get_compile_config()["loss_weights"]
    assert loss_weights == {"probs": 1.0, **training_weights({"timing": 1.5}, DEFAULT)}
    net.compile(3e-4)  # fine-tuning's fresh optimizer keeps them
    assert net.fit.get_compile_config()["loss_weights"]["timing"] == 1.5
