"""Export a trained Keras model to a model bundle and prove the export is faithful.

tf2onnx converts a ``tf.function`` with named int32 inputs (``convert.from_keras`` breaks
under Keras 3), and :func:`.graph.simplify` drops the nodes onnxruntime need not run. The
file gets the bundle metadata (format 2, with the heads' encoding, when the model has
heads), is loaded back through the daemon's own
:class:`mididuet.daemon.predict.bundle.ModelRunner` (so the daemon's checks run), and
≥ 1,000 windows are compared between Keras and onnxruntime, ``probs`` and every head; a
mismatch deletes the file and raises :class:`ExportError`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mididuet.daemon.errors import MididuetError
from mididuet.daemon.music.expression import Encoding
from mididuet.daemon.predict import bundle

from .graph import simplify

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
    check_features: np.ndarray | None = None,
    encoding: Encoding | None = None,
) -> dict[str, float]:
    """Write ``model`` as a verified bundle at ``path``; returns the verification figures.

    With ``encoding`` the model takes ``(tokens, features)`` and returns ``probs`` and its
    heads (a format-2 bundle); ``check_features`` are the windows' features then."""
    import onnx
    import tensorflow as tf
    import tf2onnx

    spec = [tf.TensorSpec((None, bundle.WINDOW), tf.int32, name=bundle.INPUT_NAME)]
    if encoding is not None:
        spec.append(tf.TensorSpec((None, bundle.WINDOW, len(encoding.features)), tf.int32, name=bundle.FEATURES_NAME))

        @tf.function(input_signature=spec)
        def serve(tokens: tf.Tensor, features: tf.Tensor) -> dict[str, tf.Tensor]:
            return dict(model({"tokens": tokens, "features": features}, training=False))
    else:
        @tf.function(input_signature=spec)
        def serve(tokens: tf.Tensor) -> dict[str, tf.Tensor]:
            return {bundle.OUTPUT_NAME: model(tokens, training=False)}

    proto, _ = tf2onnx.convert.from_function(serve, input_signature=spec, opset=OPSET)
    # tf2onnx names outputs after the dict keys; make sure the contract's names are exact,
    # in its order: probs first, then the heads and their tables.
    heads = encoding.heads if encoding else ()
    names = [bundle.OUTPUT_NAME, *heads]
    for output in list(proto.graph.output):
        base = output.name.split(":")[0]
        if base in names and output.name != base:
            _rename_tensor(proto, output.name, base)
    try:
        nodes = simplify(proto, heads)
    except ValueError as err:
        raise ExportError(f"the exported graph: {err}") from None
    names += [head + bundle.TABLE_SUFFIX for head in heads]
    order = {name: i for i, name in enumerate(names)}
    outputs = sorted(proto.graph.output, key=lambda o: order.get(o.name, len(order)))
    del proto.graph.output[:]
    proto.graph.output.extend(outputs)
    meta = {
        bundle.META_FORMAT: str(bundle.EXPRESSIVE_FORMAT if encoding else 1),
        bundle.META_VOCABULARY: json.dumps(list(vocabulary)),
        bundle.META_WINDOW: str(bundle.WINDOW),
        bundle.META_TRAINING: json.dumps(training, sort_keys=True),
    }
    if encoding is not None:
        meta[bundle.META_EXPRESSION] = json.dumps(encoding.as_metadata())
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, meta)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(path))
    try:
        return verify_export(model, path, check_windows, check_features) | {k: float(v) for k, v in nodes.items()}
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


def largest_differences(expected: dict[str, np.ndarray], actual: dict[str, Any]) -> tuple[dict[str, float], str]:
    """max |expected − actual| for each output ``actual`` has, and the output where it is largest."""
    diffs = {name: float(np.max(np.abs(expected[name] - np.asarray(actual[name])))) for name in actual}
    return diffs, max(diffs, key=lambda name: diffs[name])


def verify_export(model: Any, path: Path, windows: np.ndarray, features: np.ndarray | None = None) -> dict[str, float]:
    """Compare Keras and onnxruntime on ``windows`` (at least 1,000, cycled if fewer):
    ``probs`` and every head, each within :data:`MAX_ABS_DIFF`."""
    if len(windows) == 0:
        raise ExportError("no windows to verify the export with")
    if len(windows) < MIN_CHECK_WINDOWS:
        windows = np.resize(windows, (MIN_CHECK_WINDOWS, windows.shape[1]))
        if features is not None:
            features = np.resize(features, (MIN_CHECK_WINDOWS, *features.shape[1:]))
    runner = bundle.ModelRunner(path)
    given = windows if features is None else {"tokens": windows, "features": features}
    expected = model.predict(given, batch_size=512, verbose=0)
    expected = {k: np.asarray(v) for k, v in expected.items()} if isinstance(expected, dict) else \
        {bundle.OUTPUT_NAME: np.asarray(expected)}
    actual = runner.predict_batch(windows, features)
    diffs, worst = largest_differences(expected, actual)
    probs = bundle.OUTPUT_NAME
    agreement = float(np.mean(expected[probs].argmax(axis=1) == actual[probs].argmax(axis=1)))
    figures = {"windows": float(len(windows)), "max_abs_diff": diffs[probs], "argmax_agreement": agreement}
    figures |= {f"max_abs_diff_{name}": diff for name, diff in diffs.items() if name != probs}
    if diffs[worst] > MAX_ABS_DIFF or agreement < MIN_ARGMAX_AGREEMENT:
        raise ExportError(
            f"export check failed on {len(windows)} windows: max |Δ| {diffs[worst]:.2e} in '{worst}' "
            f"(allowed {MAX_ABS_DIFF:.0e}), same argmax on {agreement:.2%} (need {MIN_ARGMAX_AGREEMENT:.1%})"
        )
    return figures


def simplify_bundle(path: Path, out: Path | None = None, windows: int = MIN_CHECK_WINDOWS,
                    seed: int = 0) -> dict[str, float]:
    """Rewrite a bundle through :func:`.graph.simplify` (an older export, or another
    trainer's: heads in the earlier ``[batch, V, C]`` layout are factored), into ``out``
    (default: in place, through a symlink to its file). The rewritten graph must give every
    output of the old one on ``windows`` random windows of valid ids and feature classes;
    if it does not, nothing is written and :class:`ExportError` says by how much. A graph
    with nothing to drop is left as it is."""
    import onnx

    session = bundle.open_session(Path(path))  # a missing or unreadable file says so, as the daemon would
    info = bundle.parse_metadata(Path(path), dict(session.get_modelmeta().custom_metadata_map))
    proto = onnx.load(str(path))
    heads = info.expression.heads if info.expression else ()
    try:
        nodes = simplify(proto, heads)
    except ValueError as err:
        raise ExportError(f"{path}: {err}; nothing written") from None
    figures = {k: float(v) for k, v in nodes.items()} | {"windows": 0.0, "max_abs_diff": 0.0}
    target = Path(out or path).resolve()
    if nodes["nodes_after"] == nodes["nodes_before"] and target == Path(path).resolve():
        return figures
    handle, scratch_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".simplifying")
    os.close(handle)
    scratch = Path(scratch_name)
    try:
        onnx.save(proto, str(scratch))
        new = bundle.ModelRunner(scratch)
        rng = np.random.default_rng(seed)
        ids = rng.integers(0, info.size, (windows, info.window), dtype=np.int32)
        features = None
        if info.expression is not None:
            highs = [info.expression.feature_size(name) for name in info.expression.features]
            features = np.stack([rng.integers(0, high, (windows, info.window)) for high in highs], -1)
        expected, actual = every_distribution(session, ids, features), new.predict_batch(ids, features)
        diffs, worst = largest_differences(expected, actual)
        if diffs[worst] > MAX_ABS_DIFF / 10:
            raise ExportError(f"{path}: the simplified graph differs from the original by {diffs[worst]:.2e} "
                              f"in '{worst}' on {windows} windows; nothing written")
        shutil.copymode(target if target.exists() else path, scratch)  # mkstemp's 0600 is not the bundle's
        scratch.replace(target)
    finally:
        scratch.unlink(missing_ok=True)
    return figures | {"windows": float(windows), "max_abs_diff": diffs[worst]}


def every_distribution(session: Any, ids: np.ndarray, features: np.ndarray | None) -> dict[str, np.ndarray]:
    """``probs`` and each head's ``[batch, V, C]`` from a bundle's onnxruntime ``session``
    in either head layout (the daemon reads only the factored one)."""
    names = [output.name for output in session.get_outputs()]
    feeds = {bundle.INPUT_NAME: ids.astype(np.int32)}
    if features is not None:
        feeds[bundle.FEATURES_NAME] = features.astype(np.int32)
    results = dict(zip(names, session.run(names, feeds), strict=True))
    tables = {name.removesuffix(bundle.TABLE_SUFFIX) for name in names if name.endswith(bundle.TABLE_SUFFIX)}
    return {name: bundle.by_token(value, results[name + bundle.TABLE_SUFFIX]) if name in tables else value
            for name, value in results.items() if not name.endswith(bundle.TABLE_SUFFIX)}
