"""Fixtures for the daemon's unit tests: small real ONNX bundles and engines in simulated time."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mididuet.daemon.engine.engine import Engine
from mididuet.daemon.engine.settings import EngineSettings
from mididuet.daemon.predict.bundle import ModelRunner
from tests.helpers.bundles import make_bundle
from tests.helpers.engine import Sink


@pytest.fixture(scope="session")
def model(tmp_path_factory: pytest.TempPathFactory) -> ModelRunner:
    """A tiny real bundle (18 tokens: single notes and triads) run by onnxruntime."""
    return ModelRunner(make_bundle(tmp_path_factory.mktemp("bundle") / "tiny.onnx", seed=3))


@pytest.fixture(scope="session")
def peaked_model(tmp_path_factory: pytest.TempPathFactory) -> ModelRunner:
    """A bundle whose softmax is very sharp: greedy and careless sampling loop on it."""
    path = tmp_path_factory.mktemp("bundle") / "peaked.onnx"
    return ModelRunner(make_bundle(path, seed=5, sharpness=10.0))


@pytest.fixture
def build(model: ModelRunner) -> Callable[..., tuple[Engine, Sink]]:
    """``build(**settings)`` -> (engine at t=0, sink) over the tiny model."""

    def make(**fields: object) -> tuple[Engine, Sink]:
        sink = Sink()
        fields.setdefault("seed", 7)
        engine = Engine(model, EngineSettings(**fields), sink, 0)  # type: ignore[arg-type]
        return engine, sink

    return make
