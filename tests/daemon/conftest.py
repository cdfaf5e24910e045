"""Fixtures for the engine's unit tests: small real ONNX bundles and engines in simulated time."""

from __future__ import annotations

from collections.abc import Callable

import mido
import pytest

from daemon.bundle import ModelRunner
from daemon.engine import Engine
from daemon.settings import EngineSettings
from tests.bundle_factory import make_bundle
from tests.jack import hanging  # noqa: F401 - the one check, re-exported for the engine tests

MS = 1_000_000
SECOND = 1_000_000_000


@pytest.fixture(scope="session")
def model(tmp_path_factory: pytest.TempPathFactory) -> ModelRunner:
    """A tiny real bundle (18 tokens: single notes and triads) run by onnxruntime."""
    return ModelRunner(make_bundle(tmp_path_factory.mktemp("bundle") / "tiny.onnx", seed=3))


@pytest.fixture(scope="session")
def peaked_model(tmp_path_factory: pytest.TempPathFactory) -> ModelRunner:
    """A bundle whose softmax is very sharp: greedy and careless sampling loop on it."""
    path = tmp_path_factory.mktemp("bundle") / "peaked.onnx"
    return ModelRunner(make_bundle(path, seed=5, sharpness=10.0))


class Sink:
    """Collects what the engine sends, stamped with the test's clock."""

    def __init__(self) -> None:
        self.now = 0
        self.sent: list[tuple[int, mido.Message]] = []

    def __call__(self, msg: mido.Message) -> None:
        self.sent.append((self.now, msg))

    def note_ons(self) -> list[tuple[int, mido.Message]]:
        return [(t, m) for t, m in self.sent if m.type == "note_on" and m.velocity > 0]


@pytest.fixture
def build(model: ModelRunner) -> Callable[..., tuple[Engine, Sink]]:
    """``build(**settings)`` -> (engine at t=0, sink) over the tiny model."""

    def make(**fields: object) -> tuple[Engine, Sink]:
        sink = Sink()
        fields.setdefault("seed", 7)
        engine = Engine(model, EngineSettings(**fields), sink, 0)  # type: ignore[arg-type]
        return engine, sink

    return make
