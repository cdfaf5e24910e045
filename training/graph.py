"""Rewrites of an exported ONNX graph that keep what it computes and cut what it costs.

The daemon runs one onnxruntime call per decision on a ``[1, 32]`` window, so the graph's
cost is mostly per node, not per multiply. tf2onnx turns each Keras ``Embedding`` into a
``Gather`` behind nine small integer nodes: Keras's ``take`` maps a negative index ``i`` to
``i + n`` with a ``where`` (``Cast(Less) · (i + n) + Cast(Not Less) · i``). ONNX's
``Gather`` does that mapping itself, so :func:`unwrap_gather_indices` gives each such
``Gather`` its index directly. Export verifies the rewritten graph against Keras like any
other (:func:`mididuet.training.export.verify_export`).

A conditioned head computes ``softmax(context + table)`` over every token's row,
``[batch, V, C]``, though the daemon reads one row. :func:`factor_heads` makes the
bundle's outputs the two terms instead, ``context [batch, C]`` and the constant table
``[V, C]`` (format 2's layout, :mod:`mididuet.daemon.predict.bundle`), and the daemon adds
the one row it needs.

The window's features reach the trunk as ``x + Σ_k table_k[features[:, :, k]]``: per
column a ``Slice``, a ``Squeeze``, a ``Gather`` and an ``Add``. :func:`merge_feature_embeddings`
stacks the tables and makes it one ``Gather`` (each column shifted to its table's rows) and
one ``ReduceSum``; when the chain reads only the first columns (version 4's loud ones and
version 5's known ones come after the trunk's), a ``Slice`` keeps those.

:mod:`.graph_layers` then runs the wavenet's layers in fewer kernels; :func:`simplify`
applies every rewrite.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mididuet.daemon.predict.bundle import FEATURES_NAME, TABLE_SUFFIX

from .graph_layers import fold_projections, fold_residual_biases, last_rows, merge_output_layers
from .graph_reading import integer, opset, producers_and_constants, readers

MIN_OPSET = 11  # where ONNX's Gather defines negative indices (counted from the end)
REDUCE_AXES_OPSET = 13  # where Squeeze and ReduceSum take their axes as an input
SOFTMAX_LAST_AXIS_OPSET = 13  # where Softmax's default axis became the last


def simplify(proto: Any, heads: Sequence[str] = ()) -> dict[str, int]:
    """Apply every rewrite to ``proto`` (an ``onnx.ModelProto``) in place, the ``heads``
    (output names) factored; the node counts before and after. Raises ``ValueError``
    naming the heads left in neither layout (not factored, and not factored already)."""
    before = len(proto.graph.node)
    unwrap_gather_indices(proto)
    merge_feature_embeddings(proto)
    factor_heads(proto, heads)
    drop_unused(proto)  # what the passes above left: the rewrites below ask who else reads a tensor
    fold_projections(proto)  # after the features' merge: it projects the table that merge stacks
    last_rows(proto)
    fold_residual_biases(proto)
    merge_output_layers(proto)  # after the factoring, which makes the heads' logits the outputs
    drop_unused(proto)
    names = {output.name for output in proto.graph.output}
    left = [head for head in heads if head + TABLE_SUFFIX not in names]
    if left:
        raise ValueError(f"heads {left} are not Softmax(Unsqueeze(context, 1) + a constant [1, V, C] table), "
                         "the form the export writes, and cannot be factored")
    return {"nodes_before": before, "nodes_after": len(proto.graph.node)}


def merge_feature_embeddings(proto: Any, source: str = FEATURES_NAME) -> int:
    """Replace the chain of ``Add`` s that sums one ``Gather`` per column of the input
    ``source`` (``[batch, T, F]``, each column behind a ``Slice`` and a ``Squeeze``) onto
    another tensor by one ``Gather`` from the tables stacked and a ``ReduceSum``; the
    number of gathers merged (0: no such chain, or one that is not exactly the first
    columns, all of them or those before the velocity head's own)."""
    import numpy as np
    import onnx
    import onnx.numpy_helper

    graph = proto.graph
    given = next((i for i in graph.input if i.name == source), None)
    if given is None or opset(proto) < REDUCE_AXES_OPSET:
        return 0
    dims = given.type.tensor_type.shape.dim
    columns = dims[-1].dim_value if len(dims) == 3 else 0
    producer, constants = producers_and_constants(graph)
    read = readers(graph)  # a graph output counts as a reader
    gathers = {}  # a column's embedding: its Gather's output -> (column, table)
    for node in graph.node:
        if node.op_type == "Gather" and node.input[0] in constants and integer(node, "axis", 0) == 0:
            column = _column_of(node.input[1], source, producer, constants)
            if column is not None and len(read.get(node.output[0], [])) == 1:
                gathers[node.output[0]] = (column, onnx.numpy_helper.to_array(constants[node.input[0]]))
    links = {}  # an Add of the chain: its output -> (the running sum it adds to, the column's embedding)
    for node in graph.node:
        if node.op_type == "Add" and len(node.input) == 2:
            a, b = node.input
            if (b in gathers) != (a in gathers):
                links[node.output[0]] = (a, b) if b in gathers else (b, a)
    ends = [out for out in links if out not in {running for running, _ in links.values()}]
    if len(ends) != 1:
        return 0
    end, out, used = ends[0], ends[0], []
    while out in links:
        if out != end and len(read.get(out, [])) != 1:
            return 0
        out, embedding = links[out]
        used.append(embedding)
    tables = sorted((gathers[name] for name in used), key=lambda item: item[0])
    # Every column, or the first ones (the loud and known columns, after them, are not the trunk's).
    width = len(tables)
    if not 0 < width <= columns or [column for column, _ in tables] != list(range(width)) or \
            len({t.shape[1:] for _, t in tables}) != 1:
        return 0
    sizes = [len(table) for _, table in tables]
    offsets = np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(
        onnx.helper.tensor_dtype_to_np_dtype(given.type.tensor_type.elem_type))
    graph.initializer.extend([
        onnx.numpy_helper.from_array(np.concatenate([table for _, table in tables]), f"{source}.tables"),
        onnx.numpy_helper.from_array(offsets, f"{source}.offsets"),
        onnx.numpy_helper.from_array(np.array([2], np.int64), f"{source}.axis"),
    ])
    columns_read = source
    merged = []
    if width < columns:
        graph.initializer.extend([onnx.numpy_helper.from_array(np.array(values, np.int64), f"{source}.{name}")
                                  for name, values in (("first", [0]), ("width", [width]))])
        columns_read = f"{source}.trunk"
        merged.append(onnx.helper.make_node("Slice", [source, f"{source}.first", f"{source}.width", f"{source}.axis"],
                                            [columns_read]))
    merged += [
        onnx.helper.make_node("Add", [columns_read, f"{source}.offsets"], [f"{source}.rows"]),
        onnx.helper.make_node("Gather", [f"{source}.tables", f"{source}.rows"], [f"{source}.embedded"], axis=0),
        onnx.helper.make_node("ReduceSum", [f"{source}.embedded", f"{source}.axis"], [f"{source}.summed"],
                              keepdims=0),
        onnx.helper.make_node("Add", [out, f"{source}.summed"], [end]),
    ]
    at = list(graph.node).index(producer[end])
    graph.node.remove(producer[end])  # the rest of the chain is left for drop_unused
    for k, node in enumerate(merged):
        graph.node.insert(at + k, node)
    return len(used)


def _column_of(name: str, source: str, producer: dict[str, Any], constants: dict[str, Any]) -> int | None:
    """``k`` when ``name`` is ``Squeeze(Slice(source, column k of the last of 3 axes), axis 2)``."""
    import onnx.numpy_helper

    def values(tensor: str) -> list[int] | None:
        return onnx.numpy_helper.to_array(constants[tensor]).reshape(-1).tolist() if tensor in constants else None

    squeeze = producer.get(name)
    if squeeze is None or squeeze.op_type != "Squeeze" or len(squeeze.input) != 2 or values(squeeze.input[1]) \
            not in ([2], [-1]):
        return None
    sliced = producer.get(squeeze.input[0])
    if sliced is None or sliced.op_type != "Slice" or sliced.input[0] != source or len(sliced.input) not in (4, 5):
        return None
    starts, ends, axes = (values(i) for i in sliced.input[1:4])
    steps = values(sliced.input[4]) if len(sliced.input) == 5 else [1] * len(starts or [])
    if starts is None or ends is None or axes is None or steps is None or any(step != 1 for step in steps):
        return None
    column = None
    for start, stop, axis in zip(starts, ends, axes, strict=True):
        if axis in (2, -1):
            column = start if stop == start + 1 and start >= 0 else None
        elif start != 0 or stop < 2**31 - 1:
            return None
    return column


def factor_heads(proto: Any, heads: Sequence[str]) -> list[str]:
    """Replace each output in ``heads`` computed as ``Softmax(Unsqueeze(context, 1) + T)``,
    ``T`` a constant ``[1, V, C]``, by ``context`` under the head's name and ``T`` as the
    output ``head + TABLE_SUFFIX`` (``[V, C]``); the heads rewritten (one already factored, or another
    shape, is left as it is)."""
    import onnx
    import onnx.numpy_helper

    graph = proto.graph
    producer, constants = producers_and_constants(graph)
    outputs = {output.name: output for output in graph.output}
    done: list[str] = []
    claimed: set[str] = set()
    softmax_axis = -1 if opset(proto) >= SOFTMAX_LAST_AXIS_OPSET else 1  # before 13, axis 1 of a 2-D view
    for head in heads:
        found = _softmax_of_sum(head, producer, constants, softmax_axis) if head in outputs else None
        if found is None:
            continue
        context, table = found
        # The context takes the head's name: it must be a node's own output, read by nothing
        # the rewrite keeps, and a float32 table, as the daemon reads it.
        if context not in producer or context in outputs or context in claimed or table.dtype != "float32":
            continue
        claimed.add(context)
        producer[head].output[:] = [f"{head}.unfactored"]  # the Softmax, left for drop_unused
        for node in graph.node:  # the context's tensor takes the head's name
            node.output[:] = [head if o == context else o for o in node.output]
            node.input[:] = [head if i == context else i for i in node.input]
        output = outputs[head]
        dims = output.type.tensor_type.shape.dim  # [batch, V, C] becomes [batch, C]
        del dims[1:]
        dims.add().dim_value = table.shape[-1]
        name = head + TABLE_SUFFIX
        graph.initializer.append(onnx.numpy_helper.from_array(table, name))
        graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, list(table.shape)))
        producer = {out: node for node in graph.node for out in node.output}
        done.append(head)
    return done


def _softmax_of_sum(name: str, producer: dict[str, Any], constants: dict[str, Any],
                    default_axis: int) -> tuple[str, Any] | None:
    """``(context, T)`` when ``name`` is ``Softmax(Unsqueeze(context, axis 1) + T)`` over
    the last axis with ``T`` a constant ``[1, V, C]`` or ``[V, C]`` (returned as ``[V, C]``);
    ``default_axis``: the Softmax's when it names none (the opset's)."""
    import onnx.numpy_helper

    softmax = producer.get(name)
    if softmax is None or softmax.op_type != "Softmax":
        return None
    if integer(softmax, "axis", default_axis) not in (-1, 2):
        return None
    add = producer.get(softmax.input[0])
    if add is None or add.op_type != "Add":
        return None
    for first, second in (add.input, add.input[::-1]):
        unsqueeze = producer.get(first)
        if second not in constants or unsqueeze is None or unsqueeze.op_type != "Unsqueeze":
            continue
        table = onnx.numpy_helper.to_array(constants[second])
        axes = [a.ints for a in unsqueeze.attribute if a.name == "axes"]
        if len(unsqueeze.input) > 1:
            axes = [list(onnx.numpy_helper.to_array(constants[unsqueeze.input[1]]).reshape(-1))] \
                if unsqueeze.input[1] in constants else []
        if table.ndim == 3 and table.shape[0] == 1:
            table = table[0]
        if table.ndim == 2 and axes and list(axes[0]) == [1]:
            return unsqueeze.input[0], table
    return None


def unwrap_gather_indices(proto: Any) -> int:
    """Point every ``Gather`` fed by Keras's negative-index ``where`` at the index itself;
    the number rewired. The ``where`` is recognised only in full, in either order of its
    operands: ``Add(Mul(Cast(c), Add(i, n)), Mul(i, Cast(Not c)))`` with ``c = Less(Cast(i), 0)``,
    ``0`` and ``n`` constants and ``n`` the size of the axis the ``Gather`` indexes."""
    if opset(proto) < MIN_OPSET:
        return 0
    graph = proto.graph
    producer, constants = producers_and_constants(graph)
    rewired = 0
    for node in graph.node:
        if node.op_type != "Gather" or len(node.input) < 2 or node.input[0] not in constants:
            continue
        axis = integer(node, "axis", 0)
        dims = list(constants[node.input[0]].dims)
        if not -len(dims) <= axis < len(dims):
            continue
        index = _where_index(node.input[1], dims[axis], producer, constants)
        if index is not None:
            node.input[1] = index
            rewired += 1
    return rewired


def _where_index(name: str, size: int, producer: dict[str, Any], constants: dict[str, Any]) -> str | None:
    add = producer.get(name)
    if add is None or add.op_type != "Add":
        return None
    muls = [producer.get(i) for i in add.input]
    if len(muls) != 2 or any(m is None or m.op_type != "Mul" for m in muls):
        return None
    for negative, positive in (muls, muls[::-1]):
        less = _cast_source(negative, producer, "Less")
        keep = _cast_source(positive, producer, "Not")
        if less is None or keep is None:
            continue
        if keep.input[0] != less.output[0] or _constant(less.input[1], constants) != 0:
            continue
        cast = producer.get(less.input[0])
        index = cast.input[0] if cast is not None and cast.op_type == "Cast" else less.input[0]
        if index not in positive.input:
            continue
        for operand in negative.input:
            shift = producer.get(operand)
            if shift is not None and shift.op_type == "Add" and index in shift.input:
                other = [i for i in shift.input if i != index]
                if len(other) == 1 and _constant(other[0], constants) == size:
                    return index
    return None


def _cast_source(mul: Any, producer: dict[str, Any], op: str) -> Any:
    """The ``op`` node one of ``mul``'s operands is a Cast of."""
    for name in mul.input:
        cast = producer.get(name)
        if cast is None or cast.op_type != "Cast":
            continue
        source = producer.get(cast.input[0])
        if source is not None and source.op_type == op:
            return source
    return None


def _constant(name: str, constants: dict[str, Any]) -> float | None:
    """The value of a one-element initializer, else None."""
    import onnx.numpy_helper

    if name not in constants:
        return None
    value = onnx.numpy_helper.to_array(constants[name])
    return float(value.reshape(-1)[0]) if value.size == 1 else None


def drop_unused(proto: Any) -> int:
    """Remove the nodes, initializers and value infos nothing reads any more (what a
    subgraph of an ``If``, ``Loop`` or ``Scan`` reads counts as read); the number of nodes
    removed."""
    graph = proto.graph
    needed = {output.name for output in graph.output}
    kept = []
    for node in reversed(graph.node):
        if any(out in needed for out in node.output):
            kept.append(node)
            needed.update(node.input)
            needed.update(_read_by_subgraphs(node))
    removed = len(graph.node) - len(kept)
    kept.reverse()
    del graph.node[:]
    graph.node.extend(kept)
    inputs = {i.name for i in graph.input}
    for init in [i for i in graph.initializer if i.name not in needed and i.name not in inputs]:
        graph.initializer.remove(init)
    produced = {out for node in graph.node for out in node.output}
    for info in [v for v in graph.value_info if v.name not in produced]:
        graph.value_info.remove(info)
    return removed


def _read_by_subgraphs(node: Any) -> set[str]:
    """Every name the node's subgraphs read (a superset of what they take from outside)."""
    import onnx

    names: set[str] = set()
    for attr in node.attribute:
        graphs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
        for sub in graphs:
            for inner in sub.node:
                names.update(inner.input)
                names.update(_read_by_subgraphs(inner))
    return names
