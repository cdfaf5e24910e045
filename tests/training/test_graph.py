"""The export's graph rewrites compute what the graph computed, with fewer nodes; a bundle
rewritten by ``mididuet-train simplify`` plays as before."""

import os
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from mididuet.daemon.errors import MididuetError
from mididuet.daemon.music.expression import DEFAULT, FEATURES
from mididuet.daemon.predict import bundle
from mididuet.training.cli import main
from mididuet.training.export import every_distribution
from mididuet.training.graph import factor_heads, merge_feature_embeddings, simplify, unwrap_gather_indices
from tests.helpers.bundles import make_bundle

ROWS, WIDTH = 5, 3


def keras_take(index: str, rows: int, prefix: str = "", zero: float = 0.0) -> tuple[list, list, str]:
    """The nodes tf2onnx writes for Keras's ``take`` (``where(i < 0, i + n, i)``), the
    initializers they read, and the name of the index they make."""
    inits = [numpy_helper.from_array(np.array(rows, np.int32), f"{prefix}n"),
             numpy_helper.from_array(np.array(zero, np.float32), f"{prefix}zero")]
    p = prefix
    nodes = [
        helper.make_node("Add", [index, f"{p}n"], [f"{p}shifted"]),
        helper.make_node("Cast", [index], [f"{p}i_float"], to=TensorProto.FLOAT),
        helper.make_node("Less", [f"{p}i_float", f"{p}zero"], [f"{p}negative"]),
        helper.make_node("Not", [f"{p}negative"], [f"{p}positive"]),
        helper.make_node("Cast", [f"{p}positive"], [f"{p}positive_int"], to=TensorProto.INT32),
        helper.make_node("Mul", [index, f"{p}positive_int"], [f"{p}kept"]),
        helper.make_node("Cast", [f"{p}negative"], [f"{p}negative_int"], to=TensorProto.INT32),
        helper.make_node("Mul", [f"{p}negative_int", f"{p}shifted"], [f"{p}moved"]),
        helper.make_node("Add", [f"{p}moved", f"{p}kept"], [f"{p}index"]),
    ]
    return nodes, inits, f"{p}index"


def embedding(n: int = ROWS, zero: float = 0.0, opset: int = 17) -> onnx.ModelProto:
    """A table of ``ROWS`` rows behind Keras's ``take`` with ``n`` as its size."""
    table = np.arange(ROWS * WIDTH, dtype=np.float32).reshape(ROWS, WIDTH)
    nodes, inits, index = keras_take("i", n, zero=zero)
    nodes.append(helper.make_node("Gather", ["table", index], ["out"]))
    graph = helper.make_graph(nodes, "take", [helper.make_tensor_value_info("i", TensorProto.INT32, [None, 4])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [None, 4, WIDTH])],
                              [numpy_helper.from_array(table, "table"), *inits])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def run(model: onnx.ModelProto, i: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(model.SerializeToString()).run(None, {"i": i})[0]


INDICES = np.array([[0, 4, -1, -5], [2, 3, 1, 0]], np.int32)  # negative ones too: Gather maps them alike


def test_the_gather_reads_the_index_itself_and_the_where_is_gone() -> None:
    model = embedding()
    before = run(model, INDICES)
    assert simplify(model) == {"nodes_before": 10, "nodes_after": 1}
    onnx.checker.check_model(model)
    assert [n.op_type for n in model.graph.node] == ["Gather"] and model.graph.node[0].input[1] == "i"
    assert {i.name for i in model.graph.initializer} == {"table"}
    np.testing.assert_array_equal(run(model, INDICES), before)


@pytest.mark.parametrize(("what", "model"), [
    ("i < 1 is not 'negative'", embedding(zero=1.0)),
    ("i + 3 on a table of 5 rows is not Gather's mapping", embedding(n=3)),
    ("before opset 11 Gather has no negative indices", embedding(opset=10)),
])
def test_a_where_that_is_not_keras_take_is_left_alone(what: str, model: onnx.ModelProto) -> None:
    assert unwrap_gather_indices(model) == 0, what
    simplify(model)
    assert len(model.graph.node) == 10, what


def test_a_constant_that_can_be_fed_is_not_taken_for_zero() -> None:
    model = embedding()
    model.graph.input.append(helper.make_tensor_value_info("zero", TensorProto.FLOAT, []))
    assert unwrap_gather_indices(model) == 0


def test_the_shipped_bundle_is_simplified() -> None:
    """The shipped model went through the passes (355 nodes as tf2onnx wrote it, 154
    after): nothing is left for them to drop, and its only softmax is the token's."""
    model = onnx.load(str(bundle.shipped_model_path()))
    assert not any(n.op_type in ("Less", "Not") for n in model.graph.node)
    assert [n.output[0] for n in model.graph.node if n.op_type == "Softmax"] == [bundle.OUTPUT_NAME]
    # The token's table, the trunk features' (one for all), the loud and the known features' (one each).
    assert sum(n.op_type == "Gather" for n in model.graph.node) == 4
    heads = bundle.load_bundle().heads
    figures = simplify(model, heads)
    assert figures["nodes_before"] == figures["nodes_after"] <= 160
    # The wavenet's layers rewritten (training/graph_layers.py): no stack's input projection
    # left, the residuals one Gemm each, the heads reading the stack's last layer one MatMul.
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("Gemm") == 8 and ops.count("Split") == 2


def feature_chain(columns: int = 3, used: tuple[int, ...] = (0, 1, 2), step: int = 1) -> onnx.ModelProto:
    """``x + Σ_k table_k[f[:, :, k]]`` as tf2onnx writes Keras's: per column a Slice, a
    Squeeze, a Gather and an Add."""
    rng = np.random.default_rng(1)
    inits = [numpy_helper.from_array(np.array([2], np.int64), "axis2"),
             numpy_helper.from_array(np.array([0, 1, 2], np.int64), "axes")]
    nodes, running = [], "x"
    for i, k in enumerate(used):
        inits += [numpy_helper.from_array(rng.normal(size=(k + 3, 4)).astype(np.float32), f"table{i}"),
                  numpy_helper.from_array(np.array([0, 0, k], np.int64), f"start{i}"),
                  numpy_helper.from_array(np.array([2**31 - 1, 2**31 - 1, k + 1], np.int64), f"stop{i}"),
                  numpy_helper.from_array(np.array([1, 1, step], np.int64), f"step{i}")]
        nodes += [helper.make_node("Slice", ["f", f"start{i}", f"stop{i}", "axes", f"step{i}"], [f"s{i}"]),
                  helper.make_node("Squeeze", [f"s{i}", "axis2"], [f"q{i}"]),
                  helper.make_node("Gather", [f"table{i}", f"q{i}"], [f"e{i}"]),
                  helper.make_node("Add", [running, f"e{i}"], [f"sum{i}"])]
        running = f"sum{i}"
    nodes.append(helper.make_node("Relu", [running], ["y"]))
    graph = helper.make_graph(nodes, "features", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 5, 4]),
                                                  helper.make_tensor_value_info("features", TensorProto.INT32,
                                                                                [None, 5, columns])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 5, 4])], inits)
    for node in graph.node:
        node.input[:] = ["features" if i == "f" else i for i in node.input]
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def run_chain(model: onnx.ModelProto, x: np.ndarray, f: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(model.SerializeToString()).run(None, {"x": x, "features": f})[0]


def test_the_feature_embeddings_become_one_gather_and_a_sum() -> None:
    model = feature_chain()
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 5, 4)).astype(np.float32)
    f = np.stack([rng.integers(0, k + 3, (2, 5)) for k in range(3)], -1).astype(np.int32)
    before = run_chain(model, x, f)
    assert simplify(model) == {"nodes_before": 13, "nodes_after": 5}
    onnx.checker.check_model(model)
    assert [n.op_type for n in model.graph.node] == ["Add", "Gather", "ReduceSum", "Add", "Relu"]
    np.testing.assert_allclose(run_chain(model, x, f), before, atol=1e-6)


def test_a_chain_over_the_first_columns_reads_them_through_one_slice() -> None:
    """Version 4's loud columns come after the trunk's and are not in its chain: the merged
    Gather reads only the columns the chain did, and the outputs stay the same."""
    model = feature_chain(columns=4, used=(0, 1))
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 5, 4)).astype(np.float32)
    f = np.stack([rng.integers(0, 3 + min(k, 1), (2, 5)) for k in range(4)], -1).astype(np.int32)
    f[..., 2:] = 99  # the columns the chain leaves out: read, they would be out of the tables
    before = run_chain(model, x, f)
    assert simplify(model) == {"nodes_before": 9, "nodes_after": 6}
    onnx.checker.check_model(model)
    assert [n.op_type for n in model.graph.node] == ["Slice", "Add", "Gather", "ReduceSum", "Add", "Relu"]
    np.testing.assert_allclose(run_chain(model, x, f), before, atol=1e-6)


@pytest.mark.parametrize(("what", "model"), [
    ("a column left out", feature_chain(columns=3, used=(0, 2))),
    ("the first column left out", feature_chain(columns=3, used=(1, 2))),
    ("a slice with a step", feature_chain(step=2)),
    ("a column twice, one left out", feature_chain(columns=3, used=(0, 1, 1))),
    ("a column twice, every one there", feature_chain(columns=3, used=(0, 1, 1, 2))),
])
def test_a_chain_that_is_not_the_first_columns_is_left_alone(what: str, model: onnx.ModelProto) -> None:
    assert merge_feature_embeddings(model) == 0, what


def test_unfactored_heads_are_factored_and_give_the_same_distributions(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """A format-2 bundle of the earlier layout (each head a softmax over ``[batch, V, C]``)
    is refused by the daemon and rewritten by ``simplify``: 3 nodes fewer per head, and
    each token's row the same distribution."""
    path = make_bundle(tmp_path / "unfactored.onnx", expressive=True, unfactored=True)
    with pytest.raises(bundle.BundleError, match="earlier format-2 export"):
        bundle.load_bundle(path)
    rng = np.random.default_rng(5)
    windows = rng.integers(0, 18, (40, bundle.WINDOW), dtype=np.int32)
    features = rng.integers(0, 4, (40, bundle.WINDOW, len(FEATURES)), dtype=np.int32)
    before = every_distribution(ort.InferenceSession(str(path)), windows, features)
    nodes = len(onnx.load(str(path)).graph.node)
    assert main(["simplify", "--model", str(path)]) == 0
    heads = DEFAULT.heads
    assert f"{nodes} → {nodes - 3 * len(heads)} nodes" in capsys.readouterr().out
    after = bundle.load_bundle(path)
    assert [o.name for o in onnx.load(str(path)).graph.output] == [
        bundle.OUTPUT_NAME, *heads, *(h + bundle.TABLE_SUFFIX for h in heads)]
    outputs = after.predict_batch(windows, features)
    for name in (bundle.OUTPUT_NAME, *heads):
        np.testing.assert_allclose(outputs[name], before[name], atol=1e-6, err_msg=name)
    window_prediction = after.predict(windows[7], features[7])
    np.testing.assert_allclose(window_prediction.head("length", 4), before["length"][7, 4], atol=1e-6)


def conditioned_head(axis: int = -1, context: str = "c") -> onnx.ModelProto:
    """``Softmax(Unsqueeze(context, 1) + T)``, ``T`` a constant ``[1, 4, 3]``; the context
    is ``Relu(x)`` (``"c"``) or the input ``x`` itself."""
    table = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(1, 4, 3) / 7, "table")
    axes = numpy_helper.from_array(np.array([1], np.int64), "axes")
    nodes = [helper.make_node("Relu", ["x"], ["c"]), helper.make_node("Unsqueeze", [context, "axes"], ["x3"]),
             helper.make_node("Add", ["x3", "table"], ["s"]), helper.make_node("Softmax", ["s"], ["head"], axis=axis)]
    graph = helper.make_graph(nodes, "h", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
                              [helper.make_tensor_value_info("head", TensorProto.FLOAT, [None, 4, 3])], [table, axes])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_a_head_is_factored_into_a_graph_that_runs() -> None:
    model = conditioned_head()
    x = np.array([[0.5, -1.0, 2.0], [1.0, 1.0, 0.0]], np.float32)
    before = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    assert simplify(model, ["head"])["nodes_after"] == 1
    onnx.checker.check_model(model)
    session = ort.InferenceSession(model.SerializeToString())
    results = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"x": x}), strict=True))
    np.testing.assert_allclose(bundle.by_token(results["head"], results["head" + bundle.TABLE_SUFFIX]), before,
                               atol=1e-6)


@pytest.mark.parametrize(("what", "model"), [
    ("a softmax over another axis", conditioned_head(axis=1)),
    ("a context that is the graph's input: no node would produce the head", conditioned_head(context="x")),
])
def test_a_head_that_cannot_be_factored_is_left_and_simplify_names_it(what: str, model: onnx.ModelProto) -> None:
    assert factor_heads(model, ["head"]) == [], what
    with pytest.raises(ValueError, match=r"heads \['head'\] are not Softmax"):
        simplify(model, ["head"])


def older_bundle(path: Path) -> Path:
    """A real bundle with its token Embedding written as tf2onnx writes Keras's."""
    make_bundle(path)
    model = onnx.load(str(path))
    gather = next(n for n in model.graph.node if n.op_type == "Gather" and n.input[0] == "emb")
    rows = next(i for i in model.graph.initializer if i.name == "emb").dims[0]
    nodes, inits, index = keras_take(gather.input[1], rows, prefix="take_")
    gather.input[1] = index
    at = list(model.graph.node).index(gather)
    for k, node in enumerate(nodes):
        model.graph.node.insert(at + k, node)
    model.graph.initializer.extend(inits)
    onnx.save(model, str(path))
    return path


def test_simplify_rewrites_an_older_bundle_in_place(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = older_bundle(tmp_path / "older.onnx")
    path.chmod(0o640)
    windows = np.random.default_rng(3).integers(0, 18, (50, bundle.WINDOW), dtype=np.int32)
    before = bundle.load_bundle(path).predict_batch(windows)
    nodes = len(onnx.load(str(path)).graph.node)
    assert main(["simplify", "--model", str(path), "--out", str(tmp_path / "copy.onnx")]) == 0
    assert (tmp_path / "copy.onnx").stat().st_mode & 0o777 == 0o640, "a new file gets the bundle's mode"
    assert main(["simplify", "--model", str(path)]) == 0
    assert capsys.readouterr().out.count(f"{nodes} → {nodes - 9} nodes") == 2
    after = bundle.load_bundle(path)
    np.testing.assert_array_equal(after.predict_batch(windows)["probs"], before["probs"])
    assert after.info.training == bundle.load_bundle(older_bundle(tmp_path / "again.onnx")).info.training
    assert (path.stat().st_mode & 0o777) == 0o640
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["again.onnx", "copy.onnx", "older.onnx"], "no scratch file left"


def test_simplify_leaves_a_simplified_bundle_untouched(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tiny.onnx"
    make_bundle(path)
    written = path.stat().st_mtime_ns
    assert main(["simplify", "--model", str(path)]) == 0
    assert "nothing to drop" in capsys.readouterr().out
    assert path.stat().st_mtime_ns == written


def test_simplify_refuses_a_damaged_bundle_and_writes_nothing(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"not a model")
    assert main(["simplify", "--model", str(path)]) == 2
    assert "not a readable ONNX model" in capsys.readouterr().err
    assert os.listdir(tmp_path) == ["broken.onnx"] and path.read_bytes() == b"not a model"
    with pytest.raises(MididuetError):
        bundle.load_bundle(path)


def test_simplify_without_the_train_extra_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    # A fake, for a fault this venv cannot have for real: onnx not installed (None in
    # sys.modules makes its import fail as a missing module does).
    path = older_bundle(tmp_path / "older.onnx")
    monkeypatch.setitem(sys.modules, "onnx", None)
    assert main(["simplify", "--model", str(path)]) == 2
    err = capsys.readouterr().err
    assert "onnx is not installed" in err and "mididuet[train]" in err and "Traceback" not in err
