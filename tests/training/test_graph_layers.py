"""The rewrites of the wavenet's layers compute what the graph computed, in fewer nodes,
and leave alone a graph where what they fold would be read elsewhere too."""

from collections.abc import Callable

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from mididuet.training.graph import simplify
from mididuet.training.graph_layers import fold_projections, fold_residual_biases, last_rows, merge_output_layers

C = 4  # channels
RNG = np.random.default_rng(11)


class Graph:
    """A graph built node by node: each Dense a MatMul and an Add of random weights."""

    def __init__(self) -> None:
        self.nodes: list = []
        self.inits: list = []

    def constant(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def node(self, op: str, inputs: list[str], output: str, **attributes: object) -> str:
        self.nodes.append(helper.make_node(op, inputs, [output], **attributes))
        return output

    def dense(self, name: str, x: str, width: int, units: int) -> str:
        w = self.constant(f"{name}.w", RNG.normal(size=(width, units)).astype(np.float32))
        b = self.constant(f"{name}.b", RNG.normal(size=units).astype(np.float32))
        return self.node("Add", [self.node("MatMul", [x, w], f"{name}.mm"), b], name)

    def model(self, inputs: dict[str, tuple[int, list]], outputs: list[str], opset: int = 17,
              rank: int = 2) -> onnx.ModelProto:
        given = [helper.make_tensor_value_info(name, kind, shape) for name, (kind, shape) in inputs.items()]
        made = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [None] * rank) for name in outputs]
        graph = helper.make_graph(self.nodes, "g", given, made, self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        onnx.checker.check_model(model)
        return model


def run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)


def rewritten(model: onnx.ModelProto, feeds: dict[str, np.ndarray], rewrite: Callable[[onnx.ModelProto], int],
              done: int, then_simplify: bool = True) -> None:
    """``rewrite`` does ``done`` rewrites in ``model`` (then, ``then_simplify``, the whole
    pass), and the model still checks and gives every output it gave before."""
    before = run(model, feeds)
    assert rewrite(model) == done
    if then_simplify:
        simplify(model)
    onnx.checker.check_model(model)
    for got, want in zip(run(model, feeds), before, strict=True):
        np.testing.assert_allclose(got, want, atol=2e-5)


def embedded_sum(elsewhere: bool = False, last_axis: bool = False, given_out: str | None = None,
                 shared_table: bool = False) -> onnx.ModelProto:
    """``E[t] + Σ_k F[f_k]`` (a ReduceSum of one Gather) through two projections, as the
    export writes the two stacks' input; ``elsewhere``: the token's rows read by another
    node too; ``last_axis``: the ReduceSum sums the width (not a sum of rows);
    ``given_out``: that tensor is also one of the graph's outputs; ``shared_table``: a
    second Gather reads the token's table."""
    g = Graph()
    token = g.node("Gather", [g.constant("E", RNG.normal(size=(9, C)).astype(np.float32)), "t"], "token", axis=0)
    rows = g.node("Gather", [g.constant("F", RNG.normal(size=(7, C)).astype(np.float32)), "f"], "rows", axis=0)
    axis = g.constant("axis", np.array([3 if last_axis else 2], np.int64))
    summed = g.node("ReduceSum", [rows, axis], "summed", keepdims=0 if not last_axis else 1)
    if last_axis:
        summed = g.node("Reshape", [summed, g.constant("back", np.array([-1, 5, 3], np.int64))], "summed3")
        summed = g.node("Tile", [summed, g.constant("reps", np.array([1, 1, 2], np.int64))], "summed6")
        summed = g.node("Slice", [summed, g.constant("s0", np.array([0], np.int64)),
                                  g.constant("s1", np.array([C], np.int64)), g.constant("s2", np.array([2], np.int64))],
                        "summed_c")
    x = g.node("Reshape", [g.node("Add", [token, summed], "x3"), g.constant("flat", np.array([-1, C], np.int64))], "x")
    outputs = [g.node("Relu", [g.dense("trunk", x, C, 3)], "a"), g.node("Tanh", [g.dense("expr", x, C, 2)], "b")]
    if elsewhere:
        outputs.append(g.node("Relu", [token], "c"))
    if shared_table:
        outputs.append(g.node("Relu", [g.node("Gather", ["E", "t"], "again", axis=0)], "d"))
    if given_out:
        outputs.append(given_out)
    return g.model({"t": (TensorProto.INT32, [None, 5]), "f": (TensorProto.INT32, [None, 5, 3])}, outputs,
                   rank=3 if given_out in ("x3", "token") or shared_table else 2)


def embedded_feeds() -> dict[str, np.ndarray]:
    return {"t": RNG.integers(0, 9, (2, 5)).astype(np.int32), "f": RNG.integers(0, 7, (2, 5, 3)).astype(np.int32)}


def test_the_projections_are_folded_into_the_tables() -> None:
    model, feeds = embedded_sum(), embedded_feeds()
    rewritten(model, feeds, fold_projections, 2)
    ops = [n.op_type for n in model.graph.node]
    assert "MatMul" not in ops and ops.count("Split") == 1
    assert numpy_helper.to_array(next(i for i in model.graph.initializer if i.name == "E")).shape == (9, 5)


def test_projections_are_not_folded_where_a_part_is_read_elsewhere_or_the_width_summed() -> None:
    for model in (embedded_sum(elsewhere=True), embedded_sum(last_axis=True), embedded_sum(shared_table=True),
                  embedded_sum(given_out="x3"), embedded_sum(given_out="token"), embedded_sum(given_out="x")):
        assert fold_projections(model) == 0


def skips(length: int, wide_out: bool = False) -> onnx.ModelProto:
    """Each sequence's last row of ``z`` ([batch × length, C]), as the export reads a skip
    (with one row per sequence, it slices ``z`` itself); ``wide_out``: the reshaped rows
    are also one of the graph's outputs."""
    g = Graph()
    wide = g.node("Reshape", ["z", g.constant("wide.shape", np.array([-1, length * C], np.int64))], "wide") \
        if length > 1 else "z"
    last = g.node("Slice", [wide, g.constant("starts", np.array([0, -C], np.int64)),
                            g.constant("ends", np.array([2**31 - 1] * 2, np.int64)),
                            g.constant("axes", np.array([0, 1], np.int64))], "last")
    return g.model({"z": (TensorProto.FLOAT, [None, C])}, [g.node("Relu", [last], "y"), *[wide] * wide_out])


def test_each_sequences_last_row_is_one_strided_slice_or_the_tensor_itself() -> None:
    for length, ops in ((4, ["Slice", "Relu"]), (1, ["Relu"])):
        model = skips(length)
        feeds = {"z": RNG.normal(size=(3 * length, C)).astype(np.float32)}
        rewritten(model, feeds, last_rows, 1)
        assert [n.op_type for n in model.graph.node] == ops
    model = skips(4, wide_out=True)
    assert last_rows(model) == 0, "the reshaped rows are an output: they stay"
    onnx.checker.check_model(model)


def heads(outputs: bool = True, opset: int = 17, rank: int = 2) -> onnx.ModelProto:
    g = Graph()
    h = g.node("Relu", ["x"], "h")
    names = [g.dense(name, h, C, size) for name, size in (("delay", 3), ("bass", 2), ("spread", 5))]
    if not outputs:
        names = [g.node("Relu", [name], f"{name}.out") for name in names]
    return g.model({"x": (TensorProto.FLOAT, [None] * (rank - 1) + [C])}, names, opset=opset, rank=rank)


def test_the_heads_reading_one_layer_are_one_matmul_and_a_split() -> None:
    model, feeds = heads(), {"x": RNG.normal(size=(2, C)).astype(np.float32)}
    rewritten(model, feeds, merge_output_layers, 3)
    assert [n.op_type for n in model.graph.node] == ["Relu", "MatMul", "Add", "Split"]
    assert merge_output_layers(heads(outputs=False)) == 0, "not the graph's outputs: left alone"
    assert merge_output_layers(heads(opset=12)) == 0, "before opset 13 Split takes no sizes input"
    model, feeds = heads(rank=3), {"x": RNG.normal(size=(2, 5, C)).astype(np.float32)}
    rewritten(model, feeds, merge_output_layers, 3, then_simplify=False)  # split on the last axis, whatever the rank


def residual_stream(blocks: int = 3, read_elsewhere: bool = False, odd_out: bool = False) -> onnx.ModelProto:
    """The wavenet's residual stream over ``2 ** blocks`` positions: each block pairs the
    rows (``Reshape([-1, 2C])``), a Dense of the pair makes ``z``, and ``x(p) + Dense(z)``
    is the next stream; the last block's ``z`` is the output. ``read_elsewhere``: the first
    residual is also read by another node; ``odd_out``: the second block's ``x(p)`` is also
    one of the graph's outputs."""
    g = Graph()
    x, outputs = "x", []
    pair = g.constant("pair", np.array([-1, 2 * C], np.int64))
    half = [g.constant("half", np.array([0, C], np.int64)), g.constant("end", np.array([2**31 - 1] * 2, np.int64)),
            g.constant("axes", np.array([0, 1], np.int64))]
    for i in range(blocks):
        pairs = g.node("Reshape", [x, pair], f"pairs{i}")
        z = g.node("Tanh", [g.dense(f"filter{i}", pairs, 2 * C, C)], f"z{i}")
        if i == blocks - 1:
            outputs.append(z)
            break
        x = g.node("Add", [g.node("Slice", [pairs, *half], f"odd{i}"), g.dense(f"res{i}", z, C, C)], f"x{i + 1}")
        if read_elsewhere and i == 0:
            outputs.append(g.node("Relu", [x], "seen"))
        if odd_out and i == 1:
            outputs.append(f"odd{i}")
    return g.model({"x": (TensorProto.FLOAT, [None, C])}, outputs)


def test_the_residual_biases_are_carried_into_the_layers_reading_the_stream() -> None:
    model, feeds = residual_stream(), {"x": RNG.normal(size=(16, C)).astype(np.float32)}
    rewritten(model, feeds, fold_residual_biases, 2)
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("Gemm") == 2 and ops.count("Add") == 3, "the filters' biases stay, the residuals' Adds went"


def test_a_stream_read_elsewhere_keeps_its_biases() -> None:
    for model in (residual_stream(read_elsewhere=True), residual_stream(odd_out=True)):
        assert fold_residual_biases(model) == 0
