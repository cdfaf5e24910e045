"""The export's graph rewrites compute what the graph computed, with fewer nodes."""

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from mididuet.daemon.predict import bundle
from mididuet.training.graph import simplify, unwrap_gather_indices


def _keras_take(rows: int = 5, width: int = 3, zero: int = 0) -> onnx.ModelProto:
    """An Embedding as tf2onnx writes Keras's ``take``: ``where(i < 0, i + n, i)`` before a Gather."""
    table = np.arange(rows * width, dtype=np.float32).reshape(rows, width)
    inits = [numpy_helper.from_array(table, "table"), numpy_helper.from_array(np.array(rows, np.int32), "n"),
             numpy_helper.from_array(np.array(zero, np.float32), "zero")]
    nodes = [
        helper.make_node("Add", ["i", "n"], ["shifted"]),
        helper.make_node("Cast", ["i"], ["i_float"], to=TensorProto.FLOAT),
        helper.make_node("Less", ["i_float", "zero"], ["negative"]),
        helper.make_node("Not", ["negative"], ["positive"]),
        helper.make_node("Cast", ["positive"], ["positive_int"], to=TensorProto.INT32),
        helper.make_node("Mul", ["i", "positive_int"], ["kept"]),
        helper.make_node("Cast", ["negative"], ["negative_int"], to=TensorProto.INT32),
        helper.make_node("Mul", ["negative_int", "shifted"], ["moved"]),
        helper.make_node("Add", ["moved", "kept"], ["index"]),
        helper.make_node("Gather", ["table", "index"], ["out"]),
    ]
    graph = helper.make_graph(nodes, "take", [helper.make_tensor_value_info("i", TensorProto.INT32, [None, 4])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [None, 4, width])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model: onnx.ModelProto, i: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(model.SerializeToString()).run(None, {"i": i})[0]


def test_the_gather_reads_the_index_itself_and_the_where_is_gone() -> None:
    model = _keras_take()
    indices = np.array([[0, 4, -1, -5], [2, 3, 1, 0]], np.int32)  # negative ones too: Gather maps them alike
    before = _run(model, indices)
    figures = simplify(model)
    onnx.checker.check_model(model)
    assert figures == {"nodes_before": 10, "nodes_after": 1}
    assert [n.op_type for n in model.graph.node] == ["Gather"] and model.graph.node[0].input[1] == "i"
    assert {i.name for i in model.graph.initializer} == {"table"}
    np.testing.assert_array_equal(_run(model, indices), before)


def test_a_where_that_is_not_keras_take_is_left_alone() -> None:
    model = _keras_take(zero=1)  # i < 1 is not "negative": rewiring it would change the result
    assert unwrap_gather_indices(model) == 0
    simplify(model)
    assert len(model.graph.node) == 10


def test_the_shipped_bundle_is_simplified() -> None:
    """The shipped model was exported (or rewritten) through the pass: no Keras ``where``
    left, and a third fewer nodes than tf2onnx wrote (306)."""
    model = onnx.load(str(bundle.shipped_model_path()))
    assert not any(n.op_type in ("Less", "Not") for n in model.graph.node)
    assert simplify(model)["nodes_after"] == len(model.graph.node) <= 230
