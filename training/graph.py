"""Rewrites of an exported ONNX graph that keep what it computes and cut what it costs.

The daemon runs one onnxruntime call per decision on a ``[1, 32]`` window, so the graph's
cost is mostly per node, not per multiply. tf2onnx turns each Keras ``Embedding`` into a
``Gather`` behind nine small integer nodes: Keras's ``take`` maps a negative index ``i`` to
``i + n`` with a ``where`` (``Cast(Less) · (i + n) + Cast(Not Less) · i``). ONNX's
``Gather`` does that mapping itself, so :func:`unwrap_gather_indices` gives each such
``Gather`` its index directly. Export verifies the rewritten graph against Keras like any
other (:func:`mididuet.training.export.verify_export`).
"""

from __future__ import annotations

from typing import Any


def simplify(proto: Any) -> dict[str, int]:
    """Apply every rewrite to ``proto`` (an ``onnx.ModelProto``) in place; the node counts
    before and after."""
    before = len(proto.graph.node)
    unwrap_gather_indices(proto)
    drop_unused(proto)
    return {"nodes_before": before, "nodes_after": len(proto.graph.node)}


def unwrap_gather_indices(proto: Any) -> int:
    """Point every ``Gather`` fed by Keras's negative-index ``where`` at the index itself;
    the number rewired. The ``where`` is recognised only in full: ``Add(Mul(Cast(c), i + n),
    Mul(i, Cast(Not c)))`` with ``c = Less(Cast(i), 0)``, in either order of its operands."""
    producer = {out: node for node in proto.graph.node for out in node.output}
    constants = {init.name: init for init in proto.graph.initializer}
    rewired = 0
    for node in proto.graph.node:
        if node.op_type != "Gather" or len(node.input) < 2:
            continue
        index = _where_index(node.input[1], producer, constants)
        if index is not None:
            node.input[1] = index
            rewired += 1
    return rewired


def _where_index(name: str, producer: dict[str, Any], constants: dict[str, Any]) -> str | None:
    add = producer.get(name)
    if add is None or add.op_type != "Add":
        return None
    muls = [producer.get(i) for i in add.input]
    if len(muls) != 2 or any(m is None or m.op_type != "Mul" for m in muls):
        return None
    for negative, positive in (muls, muls[::-1]):
        less = _cast_of(negative, producer, "Less")
        keep = _cast_of(positive, producer, "Not")
        if less is None or keep is None:
            continue
        if keep.input[0] != less.output[0] or not _is_zero(less.input[1], constants):
            continue
        cast = producer.get(less.input[0])
        index = cast.input[0] if cast is not None and cast.op_type == "Cast" else less.input[0]
        shifted = [i for i in negative.input if producer.get(i) is not None and producer[i].op_type == "Add"]
        if index in positive.input and any(index in producer[s].input for s in shifted):
            return index
    return None


def _cast_of(mul: Any, producer: dict[str, Any], op: str) -> Any:
    """The ``op`` node whose Cast is one of ``mul``'s operands (for ``Not``: the ``Less`` it negates)."""
    for name in mul.input:
        cast = producer.get(name)
        if cast is None or cast.op_type != "Cast":
            continue
        source = producer.get(cast.input[0])
        if source is not None and source.op_type == op:
            return source
    return None


def _is_zero(name: str, constants: dict[str, Any]) -> bool:
    import onnx.numpy_helper

    return name in constants and not onnx.numpy_helper.to_array(constants[name]).any()


def drop_unused(proto: Any) -> int:
    """Remove the nodes (and initializers) nothing reads any more; the number of nodes removed."""
    graph = proto.graph
    needed = {output.name for output in graph.output}
    kept = []
    for node in reversed(graph.node):
        if any(out in needed for out in node.output):
            kept.append(node)
            needed.update(node.input)
    removed = len(graph.node) - len(kept)
    kept.reverse()
    del graph.node[:]
    graph.node.extend(kept)
    unused = [init for init in graph.initializer if init.name not in needed]
    for init in unused:
        graph.initializer.remove(init)
    return removed
