"""Damaged or foreign ONNX files: refused by ``mididuet run``, ``mididuet generate`` and
``mididuet-train evaluate``, each with exit code 2, one message naming the problem, and no
traceback. ``run`` goes through the real JACK fixture (ports exist; only the model is bad).

Each damaged file is made for real: cut in half, random bytes, an ONNX model that is not a
bundle (an Add graph built with onnx.helper), and bundles that break one rule of the
contract (vocabulary vs output width, window, format version, logits instead of softmax,
a voicing grid that is not whole numbers, a graph without the features its encoding
declares).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from mididuet.daemon.music.expression import FEATURES, FEATURES_BY_VERSION, Encoding
from mididuet.daemon.predict import bundle
from tests.helpers.bundles import make_bundle
from tests.helpers.jack import REPO


def _truncated(path: Path) -> Path:
    good = make_bundle(path.with_name("whole.onnx")).read_bytes()
    path.write_bytes(good[: len(good) // 2])
    return path


def _random_bytes(path: Path) -> Path:
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    return path


def _add_graph(path: Path) -> Path:
    """A valid ONNX model that has nothing to do with mididuet."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["c"])], "add",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1]) for n in ("a", "b")],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def _logits(path: Path) -> Path:
    """A bundle whose output skips the softmax (raw scores): the contract says probabilities."""
    make_bundle(path)
    model = onnx.load(path)
    model.graph.node[-1].CopyFrom(helper.make_node("Identity", ["logits"], ["probs"]))
    onnx.save(model, path)
    return path


def _fractional_bass(path: Path) -> Path:
    """A format-2 bundle whose voicing grid would play half a pitch class."""
    meta = Encoding().as_metadata()
    meta["classes"]["bass"] = [0, 1.5, 2, 3, 4, 5]
    return make_bundle(path, expressive=True, metadata={bundle.META_EXPRESSION: json.dumps(meta)})


def _features_missing(path: Path, graph_version: int) -> Path:
    """A graph that reads an earlier version's features under metadata that declares this
    version's (version 4's loud ones, version 5's known ones): the daemon would feed columns
    the graph does not have."""
    make_bundle(path, expressive=True, encoding=Encoding(features=FEATURES_BY_VERSION[graph_version]))
    model = onnx.load(path)
    meta = {prop.key: prop.value for prop in model.metadata_props}
    meta[bundle.META_EXPRESSION] = json.dumps(Encoding().as_metadata())
    del model.metadata_props[:]
    helper.set_model_props(model, meta)
    onnx.save(model, path)
    return path


CASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "truncated": (_truncated, "not a readable ONNX model"),
    "random-bytes": (_random_bytes, "not a readable ONNX model"),
    "foreign-add-graph": (_add_graph, "not a mididuet model bundle: metadata lacks mididuet.format"),
    "vocabulary-length": (lambda p: make_bundle(p, output_width=5), "width 5 but the vocabulary has 18 tokens"),
    "window-16": (lambda p: make_bundle(p, window=16), "window is 16 tokens; mididuet models use 32"),
    "input-16-metadata-32": (lambda p: make_bundle(p, window=16, metadata={bundle.META_WINDOW: "32"}),
                             "must have shape [batch, 32]"),
    "format-version-3": (lambda p: make_bundle(p, metadata={bundle.META_FORMAT: "3"}),
                         "bundle format version 3, this mididuet reads versions 1, 2"),
    "format-2-without-heads": (lambda p: make_bundle(p, metadata={bundle.META_FORMAT: "2"}),
                               "a format-2 bundle must declare its heads in mididuet.expression"),
    "format-2-head-missing": (lambda p: make_bundle(p, expressive=True, heads=("delay", "length")),
                              "declares heads ['timing', 'velocity', 'octave', 'bass', 'spread', 'doubled'] "
                              "that are not outputs"),
    "logits-not-probabilities": (_logits, "is not a probability distribution"),
    "format-2-fractional-bass": (_fractional_bass, "must be whole numbers"),
    "version-3-graph-under-version-5": (lambda p: _features_missing(p, 3),
                                        f"input 'features' must have shape [batch, 32, {len(FEATURES)}]"),
    "version-4-graph-under-version-5": (lambda p: _features_missing(p, 4),
                                        f"input 'features' must have shape [batch, 32, {len(FEATURES)}]"),
}


@pytest.fixture(params=sorted(CASES))
def damaged(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, str]:
    make, expected = CASES[request.param]
    return make(tmp_path / f"{request.param}.onnx"), expected


def _one_error_line(stderr: str, prefix: str, expected: str) -> None:
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith(prefix)]
    assert len(errors) == 1 and expected in errors[0], stderr


def test_generate_refuses(damaged: tuple[Path, str], tmp_path: Path) -> None:
    path, expected = damaged
    out = tmp_path / "never.mid"
    result = subprocess.run([sys.executable, "-m", "mididuet.daemon", "generate", "--model", str(path),
                             "--out", str(out)], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 2
    _one_error_line(result.stderr, "mididuet: error:", expected)
    assert not out.exists()


def test_evaluate_refuses(damaged: tuple[Path, str], tmp_path: Path) -> None:
    path, expected = damaged
    corpus = tmp_path / "corpus"  # never reached: the model is checked first
    corpus.mkdir()
    result = subprocess.run([sys.executable, "-m", "training.cli", "evaluate", "--model", str(path),
                             "--data", str(corpus)], capture_output=True, text=True, timeout=120, cwd=REPO,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 2
    _one_error_line(result.stderr, "mididuet-train: error:", expected)


@pytest.mark.jack
def test_run_refuses(damaged: tuple[Path, str], start_daemon) -> None:
    path, expected = damaged
    daemon = start_daemon(model=path, ready=False)
    assert daemon.wait(timeout=15) == 2
    _one_error_line(daemon.stderr, "mididuet: error:", expected)
    assert not any("ready" in line for line in daemon.lines)
