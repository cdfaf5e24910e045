"""Rewrites of the exported wavenet's layers: the same arithmetic in fewer onnxruntime kernels.

The daemon's call runs one window, so most of the graph's matrices are a few rows high and
each kernel's dispatch (about half a microsecond) weighs beside its arithmetic
(benchmarks/RESULTS.md). Four shapes the export writes can be run in fewer kernels:

- :func:`fold_projections`: each stack reads the embedded window through its own Dense
  projection. The embedding is a sum of table rows, ``E[t] + Σ_k F_k[f_k]``, and a
  projection is linear, so ``(E[t] + Σ F_k[f_k]) W + b = (E W + b)[t] + Σ (F_k W)[f_k]``:
  the tables are projected once, here, both stacks' side by side, and the gathered sum is
  split between them. Two MatMuls and two Adds become one Split.
- :func:`last_rows`: each block's skip reads every sequence's last position of its output
  ``z`` (``[batch × L, C]``) as ``Reshape(z, [-1, L × C])[:, -C:]``. A Slice of the rows
  with step ``L`` is the same in one kernel; with ``L = 1`` it is ``z`` itself.
- :func:`fold_residual_biases`: each residual adds a Dense of the block's output to the
  stream, ``x(p) + z W + b``; as ``Gemm(z, W, x(p))`` that is one node, not three, once
  the bias is carried down the stream into the biases of the layers that read it.
- :func:`merge_output_layers`: the heads that read the same hidden layer each end in a
  MatMul and an Add. Their weights side by side make one MatMul and one Add, which a Split
  hands back under the heads' names.

Each rewrite recognises only the shape in full and leaves anything else as it is; the
export then checks the graph against Keras (:func:`mididuet.training.export.verify_export`),
and ``mididuet-train simplify`` against the graph before.
"""

from __future__ import annotations

from typing import Any

from .graph_reading import integer, opset, reading, values

INT32_MAX = 2**31 - 1  # what tf2onnx writes for "to the end" in a Slice
SPLIT_SIZES_OPSET = 13  # where Split takes its sizes as an input


def _insert_after(graph: Any, anchor: Any, nodes: list[Any]) -> None:
    at = list(graph.node).index(anchor) + 1
    for k, node in enumerate(nodes):
        graph.node.insert(at + k, node)


def _dense(matmul: Any, constants: dict[str, Any], readers: dict[str, list[Any]],
           outputs: set[str]) -> tuple[Any, Any, Any] | None:
    """``(add, weights, bias)`` when ``matmul`` is ``x @ W`` read only by ``Add(·, b)``,
    ``W`` a constant ``[K, N]`` and ``b`` a constant ``[N]``: one Keras Dense, unactivated."""
    import onnx.numpy_helper

    if matmul.op_type != "MatMul" or matmul.input[1] not in constants or matmul.output[0] in outputs:
        return None
    after = readers.get(matmul.output[0], [])
    if len(after) != 1 or after[0].op_type != "Add":
        return None
    add = after[0]
    bias_name = next((name for name in add.input if name != matmul.output[0]), None)
    if bias_name is None or bias_name not in constants:
        return None
    weights = onnx.numpy_helper.to_array(constants[matmul.input[1]])
    bias = onnx.numpy_helper.to_array(constants[bias_name])
    if weights.ndim != 2 or bias.shape != (weights.shape[1],):
        return None
    return add, weights, bias


def fold_projections(proto: Any) -> int:
    """Project the embedding tables ahead through the Dense layers that read their sum
    (``Reshape([-1, W])`` of an Add tree of ``Gather`` s, each of its own constant table,
    or a ``ReduceSum`` of one); the number of projections folded."""
    import numpy as np
    import onnx
    import onnx.numpy_helper

    if opset(proto) < SPLIT_SIZES_OPSET:
        return 0
    graph = proto.graph
    shapes = _shapes(proto)
    folded = 0
    producer, constants, readers, outputs = reading(graph)
    for reshape in list(graph.node):
        shape = values(reshape.input[1], constants) if reshape.op_type == "Reshape" else None
        if shape is None or len(shape) != 2 or shape[0] != -1:
            continue
        width, summed = shape[1], reshape.output[0]
        layers = [_dense(node, constants, readers, outputs) if node.input[0] == summed else None
                  for node in readers.get(summed, [])]
        terms = _gathered_terms(reshape.input[0], producer, constants, readers, shapes) \
            if len(readers.get(reshape.input[0], [])) == 1 else None
        if not layers or summed in outputs or any(layer is None for layer in layers) or terms is None:
            continue
        dense = [layer for layer in layers if layer is not None]
        rows = [gather for gather, one_row in terms if one_row]
        tables = [onnx.numpy_helper.to_array(constants[gather.input[0]]) for gather, _ in terms]
        if not rows or any(w.shape[0] != width for _, w, _ in dense) or any(t.shape[1:] != (width,) for t in tables):
            continue
        weights = np.concatenate([w for _, w, _ in dense], axis=1).astype(np.float64)
        bias = np.concatenate([b for _, _, b in dense]).astype(np.float64)
        for (gather, _), table in zip(terms, tables, strict=True):
            projected = table.astype(np.float64) @ weights
            if gather is rows[0]:  # the bias once per position: on a table that gives one row each
                projected += bias
            constants[gather.input[0]].CopyFrom(onnx.numpy_helper.from_array(projected.astype(table.dtype),
                                                                              gather.input[0]))
        sizes = [w.shape[1] for _, w, _ in dense]
        graph.initializer.extend([
            onnx.numpy_helper.from_array(np.array([-1, sum(sizes)], np.int64), f"{summed}.projected_shape"),
            onnx.numpy_helper.from_array(np.array(sizes, np.int64), f"{summed}.projections"),
        ])
        reshape.input[1] = f"{summed}.projected_shape"
        for node in readers[summed]:
            graph.node.remove(node)
        for add, _, _ in dense:
            graph.node.remove(add)
        _insert_after(graph, reshape, [onnx.helper.make_node(
            "Split", [summed, f"{summed}.projections"], [add.output[0] for add, _, _ in dense], axis=1)])
        folded += len(dense)
        producer, constants, readers, outputs = reading(graph)  # read again: the fold rewrote the graph
    return folded


def _gathered_terms(name: str, producer: dict[str, Any], constants: dict[str, Any], readers: dict[str, list[Any]],
                    shapes: dict[str, list[int | None]]) -> list[tuple[Any, bool]] | None:
    """The ``Gather`` s whose rows ``name`` sums, each with True when it gives one row per
    position (False: a ``ReduceSum`` adds up several); None if ``name`` is anything else,
    or a part of it is read elsewhere too, so projecting its table would change that reader."""
    node = producer.get(name)
    if node is None:
        return None
    if node.op_type == "Add" and len(node.input) == 2 and node.input[0] != node.input[1]:
        terms = []
        for part in node.input:
            found = _gathered_terms(part, producer, constants, readers, shapes) \
                if len(readers.get(part, [])) == 1 else None
            if found is None:
                return None
            terms += found
        return terms
    one_row = True
    if node.op_type == "ReduceSum":
        summed = producer.get(node.input[0])
        if summed is None or len(readers.get(node.input[0], [])) != 1 or \
                not _keeps_last(node, len(shapes.get(node.input[0], [])), constants):
            return None
        node, one_row = summed, False
    if node.op_type != "Gather" or node.input[0] not in constants or len(readers.get(node.input[0], [])) != 1 or \
            integer(node, "axis", 0) != 0:
        return None
    return [(node, one_row)]


def _keeps_last(node: Any, rank: int, constants: dict[str, Any]) -> bool:
    """True when a ``ReduceSum`` of a tensor of ``rank`` (0: unknown) names its axes, drops
    them, and leaves the last alone (the embedding's width, which a projection acts on)."""
    axes = values(node.input[1], constants) if len(node.input) > 1 else None
    dropped = integer(node, "keepdims", 1) == 0
    return bool(rank and axes and dropped and all(0 <= (axis % rank) < rank - 1 for axis in axes))


def last_rows(proto: Any) -> int:
    """Make each ``Reshape(z, [-1, L·C])[:, -C:]`` of a ``[rows, C]`` tensor a Slice of
    its rows with step ``L`` (``z`` itself when ``L`` is 1); the number rewritten."""
    import numpy as np
    import onnx
    import onnx.numpy_helper

    graph = proto.graph
    shapes = _shapes(proto)
    rewritten = 0
    producer, constants, readers, outputs = reading(graph)
    for node in list(graph.node):
        if node.op_type != "Slice" or len(node.input) not in (4, 5) or node.output[0] in outputs:
            continue
        starts, ends, axes = (values(name, constants) for name in node.input[1:4])
        steps = values(node.input[4], constants) if len(node.input) == 5 else [1, 1]
        if axes != [0, 1] or starts is None or ends is None or steps != [1, 1] or starts[0] != 0 or \
                starts[1] >= 0 or min(ends) < INT32_MAX:
            continue
        width, source = -starts[1], node.input[0]
        reshape = producer.get(source)
        if shapes.get(source, [])[1:] == [width]:  # the last width columns of a [rows, width] tensor: itself
            for reader in readers.get(node.output[0], []):
                reader.input[:] = [source if name == node.output[0] else name for name in reader.input]
            graph.node.remove(node)
        else:
            shape = values(reshape.input[1], constants) if reshape is not None and reshape.op_type == "Reshape" \
                else None
            if shape is None or len(shape) != 2 or shape[0] != -1 or shape[1] % width or \
                    shapes.get(reshape.input[0], [])[1:] != [width] or len(readers.get(source, [])) != 1:
                continue
            length, name = shape[1] // width, node.output[0]
            graph.initializer.extend([onnx.numpy_helper.from_array(np.array([value], np.int64), f"{name}.{part}")
                                      for part, value in (("first", length - 1), ("end", INT32_MAX), ("rows", 0),
                                                          ("step", length))])
            strided = onnx.helper.make_node("Slice", [reshape.input[0], *(f"{name}.{part}" for part in
                                                                         ("first", "end", "rows", "step"))], [name])
            _insert_after(graph, node, [strided])
            graph.node.remove(node)
            graph.node.remove(reshape)
        rewritten += 1
        # Read again: the rewrite rewired readers that a later Slice may share.
        producer, constants, readers, outputs = reading(graph)
    return rewritten


def _shapes(proto: Any) -> dict[str, list[int | None]]:
    """Each tensor's shape where ONNX's shape inference can tell its rank (None: a
    dimension it cannot tell, such as the batch)."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(proto).graph
    return {info.name: [dim.dim_value if dim.HasField("dim_value") else None
                        for dim in info.type.tensor_type.shape.dim]
            for info in (*inferred.value_info, *inferred.input, *inferred.output)
            if info.type.tensor_type.HasField("shape")}


def merge_output_layers(proto: Any) -> int:
    """One MatMul, Add and Split for the Dense layers that read the same tensor and each
    give a graph output (the heads' logits); the number of layers merged."""
    import numpy as np
    import onnx
    import onnx.numpy_helper

    if opset(proto) < SPLIT_SIZES_OPSET:
        return 0
    graph = proto.graph
    _, constants, readers, outputs = reading(graph)
    groups: dict[str, list[tuple[Any, Any, Any, Any]]] = {}
    for node in graph.node:
        dense = _dense(node, constants, readers, outputs)
        if dense is not None and dense[0].output[0] in outputs:
            groups.setdefault(node.input[0], []).append((node, *dense))
    merged = 0
    for source, layers in groups.items():
        if len(layers) < 2:
            continue
        name = f"{source}.outputs"
        sizes = [weights.shape[1] for _, _, weights, _ in layers]
        graph.initializer.extend([
            onnx.numpy_helper.from_array(np.concatenate([w for _, _, w, _ in layers], axis=1), f"{name}.weights"),
            onnx.numpy_helper.from_array(np.concatenate([b for _, _, _, b in layers]), f"{name}.bias"),
            onnx.numpy_helper.from_array(np.array(sizes, np.int64), f"{name}.sizes"),
        ])
        first = layers[0][0]
        _insert_after(graph, first, [
            onnx.helper.make_node("MatMul", [source, f"{name}.weights"], [f"{name}.product"]),
            onnx.helper.make_node("Add", [f"{name}.product", f"{name}.bias"], [f"{name}.logits"]),
            onnx.helper.make_node("Split", [f"{name}.logits", f"{name}.sizes"],
                                  [add.output[0] for _, add, _, _ in layers], axis=-1),  # any rank
        ])
        for matmul, add, _, _ in layers:
            graph.node.remove(matmul)
            graph.node.remove(add)
        merged += len(layers)
    return merged


def fold_residual_biases(proto: Any) -> int:
    """Make each residual ``x' = x(p) + (z W + b)`` one ``Gemm(z, W, x(p))``; the number
    folded. The biases are carried down the residual stream instead: a stream short of
    ``o`` is right again in the Dense layers that read it once their biases gain ``o V``
    (``(x + o) V + c = x V + (o V + c)``). A stream is rewritten only when everything
    reading it is such a layer (through the ``Reshape`` that pairs its rows) or the next
    residual."""
    import numpy as np
    import onnx
    import onnx.numpy_helper

    graph = proto.graph
    shapes = _shapes(proto)
    producer, constants, readers, outputs = reading(graph)
    residuals: dict[str, tuple[Any, Any, str, Any]] = {}
    for node in graph.node:
        found = _residual(node, producer, constants, readers, outputs, shapes)
        if found is not None:
            residuals[node.output[0]] = found
    folded = 0
    for name, (_, _, kept, _) in residuals.items():
        stream = producer[producer[kept].input[0]].input[0]  # x in Slice(Reshape(x))
        if stream in residuals:  # not the first of its stream: planned with the first
            continue
        plan = _carried(name, np.zeros(0), residuals, constants, readers, outputs)
        if plan is None:
            continue
        folds, biases = plan
        for bias_name, value in biases:
            constants[bias_name].CopyFrom(onnx.numpy_helper.from_array(value, bias_name))
        for residual in folds:
            add, matmul, kept, _ = residuals[residual]
            gemm = onnx.helper.make_node("Gemm", [matmul.input[0], matmul.input[1], kept], [residual])
            _insert_after(graph, add, [gemm])
            graph.node.remove(add)  # the Dense's MatMul and Add: left for drop_unused
            folded += 1
    return folded


def _residual(node: Any, producer: dict[str, Any], constants: dict[str, Any], readers: dict[str, list[Any]],
              outputs: set[str], shapes: dict[str, list[int | None]]) -> tuple[Any, Any, str, Any] | None:
    """``(node, the Dense's MatMul, x(p), its bias)`` when ``node`` adds a Dense of a 2-D
    ``z`` to ``x(p)``, the second half of each row of ``Reshape(x, [-1, 2C])``."""
    if node.op_type != "Add" or len(node.input) != 2 or node.input[0] == node.input[1]:
        return None
    for kept, added in (node.input, node.input[::-1]):
        matmul = producer.get(added)
        if matmul is not None and matmul.op_type == "Add":  # the Dense's bias Add; its MatMul before it
            matmul = next((producer[i] for i in matmul.input if i in producer and producer[i].op_type == "MatMul"),
                          None)
        dense = _dense(matmul, constants, readers, outputs) if matmul is not None else None
        if dense is None or dense[0].output[0] != added or len(readers.get(added, [])) != 1 or \
                len(shapes.get(matmul.input[0], [])) != 2:
            continue
        width = len(dense[2])
        if _second_half(kept, producer, constants) == width:
            return node, matmul, kept, dense[2]
    return None


def _second_half(name: str, producer: dict[str, Any], constants: dict[str, Any]) -> int | None:
    """``C`` when ``name`` is ``Reshape(x, [-1, 2C])[:, C:]`` (x(p) of each kernel-2 pair)."""
    sliced = producer.get(name)
    if sliced is None or sliced.op_type != "Slice" or len(sliced.input) != 4:
        return None
    starts, ends, axes = (values(i, constants) for i in sliced.input[1:4])
    reshape = producer.get(sliced.input[0])
    shape = values(reshape.input[1], constants) if reshape is not None and reshape.op_type == "Reshape" else None
    if axes != [0, 1] or starts is None or ends is None or shape is None or len(shape) != 2 or \
            starts[0] != 0 or min(ends) < INT32_MAX or 2 * starts[1] != shape[1] or shape[0] != -1:
        return None
    return starts[1]


def _carried(residual: str, offset: Any, residuals: dict[str, tuple[Any, Any, str, Any]],
             constants: dict[str, Any], readers: dict[str, list[Any]],
             outputs: set[str]) -> tuple[list[str], list[tuple[str, Any]]] | None:
    """The residuals to fold from ``residual`` down its stream, and the biases that take
    the carried sum (``(name, new value)``), with ``x(p)`` of ``residual`` short of
    ``offset`` (empty: not short); None if something reading the stream cannot take it."""
    import numpy as np

    if residual in outputs or not readers.get(residual):
        return None
    _, _, _, bias = residuals[residual]
    offset = bias.astype(np.float64) + (offset if len(offset) else 0.0)
    folds, biases = [residual], []
    for reshape in readers.get(residual, []):
        shape = values(reshape.input[1], constants) if reshape.op_type == "Reshape" else None
        if shape is None or len(shape) != 2 or shape[0] != -1 or shape[1] % len(offset) or reshape.output[0] in outputs:
            return None
        rows = np.tile(offset, shape[1] // len(offset))  # each row of the reshape: that many positions
        for reader in readers.get(reshape.output[0], []):
            nexts = [r for r in readers.get(reader.output[0], []) if r.output[0] in residuals]
            dense = _dense(reader, constants, readers, outputs) if reader.input[0] == reshape.output[0] else None
            if dense is not None:
                add, weights, given = dense
                bias_name = next(i for i in add.input if i != reader.output[0])
                if len(readers[bias_name]) != 1 or weights.shape[0] != len(rows):
                    return None
                biases.append((bias_name, (given + rows @ weights).astype(given.dtype)))
            elif reader.op_type == "Slice" and len(nexts) == 1 and len(readers[reader.output[0]]) == 1 and \
                    residuals[nexts[0].output[0]][2] == reader.output[0]:
                further = _carried(nexts[0].output[0], offset, residuals, constants, readers, outputs)
                if further is None:
                    return None
                folds += further[0]
                biases += further[1]
            else:
                return None
    return folds, biases
