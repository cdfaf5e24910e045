"""Build small, real ONNX model bundles in tests, without TensorFlow.

The graph is a real network (embedding → mean over the window → dense → softmax) that
onnxruntime runs like any exported model; its weights are random but seeded. Tests use
it where training a Keras model would cost seconds and prove nothing more, and to make
bundles that break the contract on purpose.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from mididuet.daemon.predict import bundle

DEFAULT_VOCABULARY = [
    "C4", "D4", "E4", "F4", "G4", "A4", "B4", "C5", "E-4", "B-3", "G3", "C3",
    "0.4.7", "7.11.2", "9.0.4", "5.9.0", "2.5.9", "4.7.11",
]


def make_bundle(
    path: Path,
    vocabulary: list[str] | None = None,
    *,
    seed: int = 0,
    output_width: int | None = None,
    window: int = bundle.WINDOW,
    metadata: dict[str, str] | None = None,
    drop_metadata: tuple[str, ...] = (),
    input_type: int = TensorProto.INT32,
    sharpness: float = 3.0,
) -> Path:
    """Write a bundle to ``path``; keyword arguments let a test break one rule at a time."""
    vocab = list(vocabulary or DEFAULT_VOCABULARY)
    width = output_width if output_width is not None else len(vocab)
    rng = np.random.default_rng(seed)
    dim = 8
    emb = rng.normal(size=(len(vocab), dim)).astype(np.float32)
    dense = (rng.normal(size=(dim, width)) * sharpness).astype(np.float32)
    nodes = []
    tokens_in = "tokens"
    if input_type != TensorProto.INT32:
        nodes.append(helper.make_node("Cast", ["tokens"], ["tokens32"], to=TensorProto.INT32))
        tokens_in = "tokens32"
    nodes += [
        helper.make_node("Gather", ["emb", tokens_in], ["embedded"], axis=0),
        helper.make_node("ReduceMean", ["embedded"], ["pooled"], axes=[1], keepdims=0),
        helper.make_node("MatMul", ["pooled", "dense"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("tokens", input_type, ["batch", window])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", width])],
        initializer=[numpy_helper.from_array(emb, "emb"), numpy_helper.from_array(dense, "dense")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    meta = {
        bundle.META_FORMAT: str(bundle.FORMAT_VERSION),
        bundle.META_VOCABULARY: json.dumps(vocab),
        bundle.META_WINDOW: str(window),
        bundle.META_TRAINING: json.dumps({"corpus": "tests", "arch": "tiny"}),
    }
    meta.update(metadata or {})
    for key in drop_metadata:
        meta.pop(key, None)
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path)
    return path
