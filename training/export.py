"""Export a trained Keras model to a model bundle and prove the export is faithful.

tf2onnx converts a ``tf.function`` with a named int32 input (``convert.from_keras`` breaks
under Keras 3). The file gets the bundle metadata, is loaded back
through the daemon's own :class:`mididuet.daemon.predict.bundle.ModelRunner` (so the daemon's checks run),
and ≥ 1,000 windows are compared between Keras and onnxruntime; a mismatch deletes the
file and raises :class:`ExportError`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mididuet.daemon.errors import MididuetError
from mididuet.daemon.predict import bundle

OPSET = 17
MAX_ABS_DIFF = 1e-4
MIN_ARGMAX_AGREEMENT = 0.999
MIN_CHECK_WINDOWS = 1000


class ExportError(MididuetError):
    """The exported file does not behave like the Keras model it came from."""


def export_bundle(
    model: Any,
    path: Path,
    vocabulary: Sequence[str],
    training: dict[str, Any],
    check_windows: np.ndarray,
) -> dict[str, float]:
    """Write ``model`` as a verified bundle at ``path``; returns the verification figures."""
    import onnx
    import tensorflow as tf
    import tf2onnx

    spec = [tf.TensorSpec((None, bundle.WINDOW), tf.int32, name=bundle.INPUT_NAME)]

    @tf.function(input_signature=spec)
    def serve(tokens: tf.Tensor) -> dict[str, tf.Tensor]:
        return {bundle.OUTPUT_NAME: model(tokens, training=False)}

    proto, _ = tf2onnx.convert.from_function(serve, input_signature=spec, opset=OPSET)
    # tf2onnx names outputs after the dict key; make sure the contract's name is exact.
    for output in proto.graph.output:
        if output.name.split(":")[0] == bundle.OUTPUT_NAME and output.name != bundle.OUTPUT_NAME:
            _rename_tensor(proto, output.name, bundle.OUTPUT_NAME)
    meta = {
        bundle.META_FORMAT: str(bundle.FORMAT_VERSION),
        bundle.META_VOCABULARY: json.dumps(list(vocabulary)),
        bundle.META_WINDOW: str(bundle.WINDOW),
        bundle.META_TRAINING: json.dumps(training, sort_keys=True),
    }
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, meta)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(path))
    try:
        return verify_export(model, path, check_windows)
    except Exception:
        path.unlink(missing_ok=True)
        raise


def _rename_tensor(proto: Any, old: str, new: str) -> None:
    for node in proto.graph.node:
        node.output[:] = [new if o == old else o for o in node.output]
        node.input[:] = [new if i == old else i for i in node.input]
    for output in proto.graph.output:
        if output.name == old:
            output.name = new


def verify_export(model: Any, path: Path, windows: np.ndarray) -> dict[str, float]:
    """Compare Keras and onnxruntime on ``windows`` (at least 1,000, cycled if fewer)."""
    if len(windows) == 0:
        raise ExportError("no windows to verify the export with")
    if len(windows) < MIN_CHECK_WINDOWS:
        windows = np.resize(windows, (MIN_CHECK_WINDOWS, windows.shape[1]))
    runner = bundle.ModelRunner(path)
    expected = np.asarray(model.predict(windows, batch_size=512, verbose=0))
    actual = runner.query_batch(windows)
    max_diff = float(np.max(np.abs(expected - actual)))
    agreement = float(np.mean(expected.argmax(axis=1) == actual.argmax(axis=1)))
    figures = {"windows": float(len(windows)), "max_abs_diff": max_diff, "argmax_agreement": agreement}
    if max_diff > MAX_ABS_DIFF or agreement < MIN_ARGMAX_AGREEMENT:
        raise ExportError(
            f"export check failed on {len(windows)} windows: max |Δprob| {max_diff:.2e} "
            f"(allowed {MAX_ABS_DIFF:.0e}), same argmax on {agreement:.2%} (need {MIN_ARGMAX_AGREEMENT:.1%})"
        )
    return figures
