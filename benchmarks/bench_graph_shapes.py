"""Would another shape of the exported graph make one prediction cheaper? Three shapes at
the shipped model's sizes, timed against the shipped bundle in the same run.

    .venv/bin/python benchmarks/bench_graph_shapes.py [--model models/chopin.onnx] [--queries 5000]

The engine's decision target (p99 ≤ 0.35 ms, issue 12) is missed on machines where
onnxruntime's own call already takes most of it. Before rebuilding the export, this asks
what the graph's shape could buy. Each shape is built with ``onnx.helper`` from seeded
random weights of the shipped sizes (a prediction's cost does not depend on the values'
meaning), and run with the daemon's session options (:func:`open_session`):

- **pruned**: today's export (``training.model._wavenet_last_position``): both stacks
  kept apart, each block a kernel-2 convolution over the 16, 8, 4, 2, 1 positions the last
  prediction needs. It should time like the shipped bundle: the check that the synthetic
  graphs cost what real ones do.
- **fused**: the token's stack and the heads' stack as one wider stack (block-diagonal
  weights: the same numbers), and the eight heads one Gemm split in eight: about half the
  nodes, more arithmetic.
- **floor**: one Cast node over the same inputs (one small output where the bundle has
  nine), about what any call costs: the binding and the inputs' conversion.
- **streaming**: one new position per block, the position ``d`` back fed in from a cache
  of earlier calls (a fast-WaveNet), its rows given back for the cache: the least
  arithmetic. It would need a new bundle format and the window's state kept in step.

Inputs are random windows, as the daemon's vary (all-zero windows run faster than real
ones). Prints p50 and p99 of each and its ratio to the shipped bundle.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from mididuet.daemon.predict.bundle import FEATURES_NAME, INPUT_NAME, OUTPUT_NAME, ModelRunner, open_session
from mididuet.training.model import EXPRESSION, TRUNK, WAVENET_DILATIONS, WAVENET_EMBEDDING, Stack

ROOT = Path(__file__).resolve().parent.parent

OPSET = 17


class Graph:
    """Nodes and seeded random initializers, added as the shape is written."""

    def __init__(self, seed: int = 0) -> None:
        self.nodes: list = []
        self.initializers: list = []
        self.inputs: list = []
        self.outputs: list[str] = []
        self._rng = np.random.default_rng(seed)
        self._count = 0

    def const(self, value: np.ndarray) -> str:
        self._count += 1
        name = f"c{self._count}"
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def weight(self, *shape: int) -> str:
        return self.const((self._rng.standard_normal(shape) * 0.1).astype(np.float32))

    def op(self, op_type: str, inputs: list[str], outputs: int = 1, **attrs: object) -> str | list[str]:
        self._count += 1
        names = [f"n{self._count}_{k}" for k in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, names, **attrs))
        return names[0] if outputs == 1 else names

    def dense(self, x: str, width_in: int, width_out: int, activation: str | None = None) -> str:
        y = self.op("Gemm", [x, self.weight(width_in, width_out), self.weight(width_out)])
        return self.op(activation, [y]) if activation else y

    def input(self, name: str, elem: int, shape: list[int]) -> str:
        self.inputs.append(helper.make_tensor_value_info(name, elem, shape))
        return name

    def save(self, path: Path) -> Path:
        outputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in self.outputs]
        graph = helper.make_graph(self.nodes, path.stem, self.inputs, outputs, initializer=self.initializers)
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)]), path)
        return path


def _embedded(g: Graph, vocab: int, feature_rows: int, positions: int, n_features: int) -> str:
    """The tokens' and the features' embeddings summed, ``[positions, E]`` (as the export
    merges the features into one gather)."""
    tokens = g.input(INPUT_NAME, TensorProto.INT32, [1, positions])
    features = g.input(FEATURES_NAME, TensorProto.INT32, [1, positions, n_features])
    summed = g.op("ReduceSum", [g.op("Gather", [g.weight(feature_rows, WAVENET_EMBEDDING), features]),
                                g.const(np.array([-2], np.int64))], keepdims=0)
    x = g.op("Add", [g.op("Gather", [g.weight(vocab, WAVENET_EMBEDDING), tokens]), summed])
    return g.op("Reshape", [x, g.const(np.array([-1, WAVENET_EMBEDDING], np.int64))])


def _columns(g: Graph, x: str, start: int, end: int) -> str:
    return g.op("Slice", [x, g.const(np.array([start], np.int64)), g.const(np.array([end], np.int64)),
                          g.const(np.array([1], np.int64))])


def _pruned_stack(g: Graph, x: str, stack: Stack, window: int) -> str:
    """One stack as today's export writes it: pairs of kept rows, one Gemm per part."""
    c = stack.channels
    x = g.dense(x, WAVENET_EMBEDDING, c)
    lasts, length = [], window
    for i in range(len(WAVENET_DILATIONS)):
        length //= 2
        pairs = g.op("Reshape", [x, g.const(np.array([-1, 2 * c], np.int64))])
        z = g.op("Mul", [g.dense(pairs, 2 * c, c, "Tanh"), g.dense(pairs, 2 * c, c, "Sigmoid")])
        rows = g.op("Reshape", [z, g.const(np.array([-1, length * c], np.int64))])
        lasts.append(_columns(g, rows, (length - 1) * c, length * c))
        if i < len(WAVENET_DILATIONS) - 1:
            x = g.op("Add", [_columns(g, pairs, c, 2 * c), g.dense(z, c, c)])
    skip = g.dense(g.op("Concat", lasts, axis=1), len(lasts) * c, stack.skip, "Relu")
    return g.dense(skip, stack.skip, stack.head, "Relu")


def _streaming_stack(g: Graph, x: str, stack: Stack, prefix: str) -> str:
    """One stack over the newest position only: block ``i`` reads its input ``d`` back from
    the cache (an input) and gives its new input row back (an output) for later calls."""
    c = stack.channels
    x = g.dense(x, WAVENET_EMBEDDING, c)
    lasts = []
    for i in range(len(WAVENET_DILATIONS)):
        past = g.input(f"{prefix}past{i}", TensorProto.FLOAT, [1, c])
        g.outputs.append(x)
        pairs = g.op("Concat", [past, x], axis=1)
        z = g.op("Mul", [g.dense(pairs, 2 * c, c, "Tanh"), g.dense(pairs, 2 * c, c, "Sigmoid")])
        lasts.append(z)
        if i < len(WAVENET_DILATIONS) - 1:
            x = g.op("Add", [x, g.dense(z, c, c)])
    skip = g.dense(g.op("Concat", lasts, axis=1), len(lasts) * c, stack.skip, "Relu")
    return g.dense(skip, stack.skip, stack.head, "Relu")


def _outputs(g: Graph, token_hidden: str, token_width: int, heads_hidden: str, heads_width: int, vocab: int,
             classes: list[int], one_gemm: bool) -> None:
    g.outputs.insert(0, g.op("Softmax", [g.dense(token_hidden, token_width, vocab)], axis=-1))
    if one_gemm:
        logits = g.dense(heads_hidden, heads_width, sum(classes))
        split = g.op("Split", [logits, g.const(np.array(classes, np.int64))], outputs=len(classes), axis=1)
        g.outputs[1:1] = split
    else:
        g.outputs[1:1] = [g.dense(heads_hidden, heads_width, n) for n in classes]


def build(shape: str, vocab: int, feature_rows: int, n_features: int, classes: list[int], window: int,
          path: Path) -> Path:
    g = Graph()
    if shape == "floor":
        g.input(INPUT_NAME, TensorProto.INT32, [1, window])
        g.input(FEATURES_NAME, TensorProto.INT32, [1, window, n_features])
        g.outputs = [g.op("Cast", [INPUT_NAME], to=TensorProto.FLOAT)]
        return g.save(path)
    if shape == "streaming":
        x = _embedded(g, vocab, feature_rows, 1, n_features)
        token_hidden = _streaming_stack(g, x, TRUNK, "t")
        heads_hidden = _streaming_stack(g, x, EXPRESSION, "e")
        _outputs(g, token_hidden, TRUNK.head, heads_hidden, EXPRESSION.head, vocab, classes, one_gemm=False)
    elif shape == "fused":
        x = _embedded(g, vocab, feature_rows, window, n_features)
        both = Stack("both", TRUNK.channels + EXPRESSION.channels, TRUNK.skip + EXPRESSION.skip,
                     TRUNK.head + EXPRESSION.head)
        hidden = _pruned_stack(g, x, both, window)
        _outputs(g, hidden, both.head, hidden, both.head, vocab, classes, one_gemm=True)
    else:
        x = _embedded(g, vocab, feature_rows, window, n_features)
        token_hidden = _pruned_stack(g, x, TRUNK, window)
        heads_hidden = _pruned_stack(g, x, EXPRESSION, window)
        _outputs(g, token_hidden, TRUNK.head, heads_hidden, EXPRESSION.head, vocab, classes, one_gemm=False)
    return g.save(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "chopin.onnx",
                        help="the shipped bundle, the baseline (default models/chopin.onnx)")
    parser.add_argument("--queries", type=int, default=5000, help="per graph (default 5000)")
    args = parser.parse_args()
    runner = ModelRunner(args.model)
    encoding = runner.info.expression
    if encoding is None:
        parser.error(f"{args.model} has no heads: the shapes compared are the expressive ones")
    vocab, window, n_features = runner.info.size, runner.info.window, len(runner.features)
    feature_rows = sum(encoding.feature_size(name) for name in runner.features)
    classes = [encoding.size(name) for name in runner.heads]
    wanted = [OUTPUT_NAME, *runner.heads]
    rng = np.random.default_rng(1)
    highs = np.array([encoding.feature_size(name) for name in runner.features])

    with tempfile.TemporaryDirectory() as tmp:
        sessions = {"shipped bundle": (open_session(args.model), window, wanted)}
        nodes = {"shipped bundle": len(onnx.load(str(args.model)).graph.node)}
        for shape in ("floor", "pruned", "fused", "streaming"):
            path = build(shape, vocab, feature_rows, n_features, classes, window, Path(tmp) / f"{shape}.onnx")
            session = open_session(path)
            nodes[shape] = len(onnx.load(str(path)).graph.node)
            names = [o.name for o in session.get_outputs()]  # the streaming cache's rows too
            sessions[shape] = (session, 1 if shape == "streaming" else window, names)
        times: dict[str, list[int]] = {name: [] for name in sessions}
        for i in range(args.queries + 200):  # the first 200 warm the caches
            for name, (session, positions, outputs) in sessions.items():
                feeds = {INPUT_NAME: rng.integers(0, vocab, (1, positions), dtype=np.int32),
                         FEATURES_NAME: (rng.random((1, positions, n_features)) * highs).astype(np.int32)}
                for given in session.get_inputs()[2:]:
                    feeds[given.name] = rng.standard_normal((1, given.shape[1])).astype(np.float32)
                t0 = time.perf_counter_ns()
                session.run(outputs, feeds)
                if i >= 200:
                    times[name].append(time.perf_counter_ns() - t0)
    base = [np.percentile(times["shipped bundle"], q) for q in (50, 99)]
    for name, t in times.items():
        p50, p99 = (np.percentile(t, q) for q in (50, 99))
        count = f"{nodes[name]} ONNX node{'s' if nodes[name] != 1 else ''}"
        print(f"{name} ({count}): p50 {p50 / 1e6:.3f} ms, p99 {p99 / 1e6:.3f} ms; "
              f"÷ the shipped bundle p50 {p50 / base[0]:.2f}x, p99 {p99 / base[1]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
