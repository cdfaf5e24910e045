"""Build small, real ONNX model bundles in tests, without TensorFlow.

The graph is a real network (embedding → mean over the window → dense → softmax) that
onnxruntime runs like any exported model; its weights are random but seeded. Tests use
it where training a Keras model would cost seconds and prove nothing more, and to make
bundles that break the contract on purpose. With ``expressive=True`` it is a format-2
bundle: the window's features are embedded and added in, and each head is the context's
logits over its classes and a seeded row per token (format 2's factored layout).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from mididuet.daemon.music.expression import DEFAULT, Encoding
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
    expressive: bool = False,
    heads: tuple[str, ...] | None = None,
    head_classes: dict[str, int] | None = None,
    unfactored: bool = False,
    encoding: Encoding = DEFAULT,
) -> Path:
    """Write a bundle to ``path``; keyword arguments let a test break one rule at a time
    (``heads``: the head outputs written, default all declared; ``head_classes``: a head
    written with another number of classes than the metadata declares; ``unfactored``:
    the heads in the earlier ``[batch, V, C]`` layout, as ``simplify`` can rewrite;
    ``encoding``: the classes and features it declares, an earlier version's to test it)."""
    vocab = list(vocabulary or DEFAULT_VOCABULARY)
    width = output_width if output_width is not None else len(vocab)
    rng = np.random.default_rng(seed)
    dim = 8
    emb = rng.normal(size=(len(vocab), dim)).astype(np.float32)
    dense = (rng.normal(size=(dim, width)) * sharpness).astype(np.float32)
    initializers = [numpy_helper.from_array(emb, "emb"), numpy_helper.from_array(dense, "dense")]
    nodes = []
    tokens_in = "tokens"
    if input_type != TensorProto.INT32:
        nodes.append(helper.make_node("Cast", ["tokens"], ["tokens32"], to=TensorProto.INT32))
        tokens_in = "tokens32"
    inputs = [helper.make_tensor_value_info("tokens", input_type, ["batch", window])]
    outputs = [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", width])]
    nodes.append(helper.make_node("Gather", ["emb", tokens_in], ["embedded"], axis=0))
    summed = "embedded"
    if expressive:
        inputs.append(helper.make_tensor_value_info("features", TensorProto.INT32,
                                                    ["batch", window, len(encoding.features)]))
        for k, name in enumerate(encoding.features):
            table = rng.normal(size=(encoding.feature_size(name), dim)).astype(np.float32)
            initializers += [numpy_helper.from_array(table, f"feature_{name}"),
                             numpy_helper.from_array(np.array(k, dtype=np.int64), f"index_{name}")]
            nodes += [helper.make_node("Gather", ["features", f"index_{name}"], [f"classes_{name}"], axis=2),
                      helper.make_node("Gather", [f"feature_{name}", f"classes_{name}"], [f"embedded_{name}"], axis=0),
                      helper.make_node("Add", [summed, f"embedded_{name}"], [f"sum_{name}"])]
            summed = f"sum_{name}"
    nodes += [
        helper.make_node("ReduceMean", [summed], ["pooled"], axes=[1], keepdims=0),
        helper.make_node("MatMul", ["pooled", "dense"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
    ]
    if expressive:
        initializers.append(numpy_helper.from_array(np.array([1], dtype=np.int64), "axis_1"))
        for name in heads if heads is not None else encoding.heads:
            classes = (head_classes or {}).get(name, encoding.size(name))
            context = (rng.normal(size=(dim, classes)) * sharpness).astype(np.float32)
            rows = (rng.normal(size=(len(vocab), classes)) * sharpness).astype(np.float32)
            initializers.append(numpy_helper.from_array(context, f"{name}_context"))
            if not unfactored:
                table = name + bundle.TABLE_SUFFIX
                initializers.append(numpy_helper.from_array(rows, table))
                nodes.append(helper.make_node("MatMul", ["pooled", f"{name}_context"], [name]))
                outputs += [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", classes]),
                            helper.make_tensor_value_info(table, TensorProto.FLOAT, [len(vocab), classes])]
                continue
            initializers.append(numpy_helper.from_array(rows[None], f"{name}_rows"))
            nodes += [helper.make_node("MatMul", ["pooled", f"{name}_context"], [f"{name}_c"]),
                      helper.make_node("Unsqueeze", [f"{name}_c", "axis_1"], [f"{name}_c3"]),
                      helper.make_node("Add", [f"{name}_c3", f"{name}_rows"], [f"{name}_logits"]),
                      helper.make_node("Softmax", [f"{name}_logits"], [name], axis=-1)]
            outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", len(vocab), classes]))
    graph = helper.make_graph(nodes, "tiny", inputs, outputs, initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    meta = {
        bundle.META_FORMAT: str(bundle.EXPRESSIVE_FORMAT if expressive else 1),
        bundle.META_VOCABULARY: json.dumps(vocab),
        bundle.META_WINDOW: str(window),
        bundle.META_TRAINING: json.dumps({"corpus": "tests", "arch": "tiny"}),
    }
    if expressive:
        meta[bundle.META_EXPRESSION] = json.dumps(encoding.as_metadata())
    meta.update(metadata or {})
    for key in drop_metadata:
        meta.pop(key, None)
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path)
    return path
