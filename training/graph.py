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
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mididuet.daemon.predict.bundle import TABLE_SUFFIX

MIN_OPSET = 11  # where ONNX's Gather defines negative indices (counted from the end)


def simplify(proto: Any, heads: Sequence[str] = ()) -> dict[str, int]:
    """Apply every rewrite to ``proto`` (an ``onnx.ModelProto``) in place, the ``heads``
    (output names) factored; the node counts before and after."""
    before = len(proto.graph.node)
    unwrap_gather_indices(proto)
    factor_heads(proto, heads)
    drop_unused(proto)
    return {"nodes_before": before, "nodes_after": len(proto.graph.node)}


def factor_heads(proto: Any, heads: Sequence[str]) -> list[str]:
    """Replace each output in ``heads`` computed as ``Softmax(Unsqueeze(context, 1) + T)``,
    ``T`` a constant ``[1, V, C]``, by ``context`` under the head's name and ``T`` as the
    output ``head + TABLE_SUFFIX`` (``[V, C]``); the heads rewritten (one already factored, or another
    shape, is left as it is)."""
    import onnx
    import onnx.numpy_helper

    graph = proto.graph
    producer = {out: node for node in graph.node for out in node.output}
    fed = {i.name for i in graph.input}
    constants = {init.name: init for init in graph.initializer if init.name not in fed}
    outputs = {output.name: output for output in graph.output}
    done = []
    for head in heads:
        found = _softmax_of_sum(head, producer, constants) if head in outputs else None
        if found is None:
            continue
        context, table = found
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


def _softmax_of_sum(name: str, producer: dict[str, Any], constants: dict[str, Any]) -> tuple[str, Any] | None:
    """``(context, T)`` when ``name`` is ``Softmax(Unsqueeze(context, axis 1) + T)`` over
    the last axis with ``T`` a constant ``[1, V, C]`` or ``[V, C]`` (returned as ``[V, C]``)."""
    import onnx.numpy_helper

    softmax = producer.get(name)
    if softmax is None or softmax.op_type != "Softmax":
        return None
    if next((a.i for a in softmax.attribute if a.name == "axis"), -1) not in (-1, 2):
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
    if _opset(proto) < MIN_OPSET:
        return 0
    graph = proto.graph
    producer = {out: node for node in graph.node for out in node.output}
    fed = {i.name for i in graph.input}  # an initializer also listed as an input can be fed another value
    constants = {init.name: init for init in graph.initializer if init.name not in fed}
    rewired = 0
    for node in graph.node:
        if node.op_type != "Gather" or len(node.input) < 2 or node.input[0] not in constants:
            continue
        axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
        dims = list(constants[node.input[0]].dims)
        if not -len(dims) <= axis < len(dims):
            continue
        index = _where_index(node.input[1], dims[axis], producer, constants)
        if index is not None:
            node.input[1] = index
            rewired += 1
    return rewired


def _opset(proto: Any) -> int:
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)


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
