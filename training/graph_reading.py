"""Reading an ONNX graph, for the rewrites (:mod:`.graph`, :mod:`.graph_layers`): who
makes each tensor, who reads it, and which tensors are constants."""

from __future__ import annotations

from typing import Any

GRAPH_OUTPUT = "graph output"  # the op type of the reader :func:`readers` gives each graph output


def producers_and_constants(graph: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Each tensor's producing node, and the initializers that are constants (one also
    listed as an input can be fed another value)."""
    fed = {i.name for i in graph.input}
    return ({out: node for node in graph.node for out in node.output},
            {init.name: init for init in graph.initializer if init.name not in fed})


def readers(graph: Any) -> dict[str, list[Any]]:
    """The nodes that read each tensor, and for a graph output one more reader: a node of
    type :data:`GRAPH_OUTPUT`, which no rewrite's pattern matches, so that a tensor the
    graph gives out counts as read elsewhere."""
    import onnx

    found: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            found.setdefault(name, []).append(node)
    for output in graph.output:
        found.setdefault(output.name, []).append(onnx.helper.make_node(GRAPH_OUTPUT, [output.name], [""]))
    return found


def reading(graph: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, list[Any]], set[str]]:
    """What a rewrite reads of a graph before it looks for its shape, and again after it
    changes the graph: each tensor's producer, the constants, each tensor's readers
    (:func:`readers`) and the names the graph gives out."""
    producer, constants = producers_and_constants(graph)
    return producer, constants, readers(graph), {output.name for output in graph.output}


def values(name: str, constants: dict[str, Any]) -> list[int] | None:
    """A constant's values, flattened to a list; None when ``name`` is not a constant."""
    import onnx.numpy_helper

    return onnx.numpy_helper.to_array(constants[name]).reshape(-1).tolist() if name in constants else None


def integer(node: Any, name: str, default: int) -> int:
    """A node's integer attribute ``name`` (an axis, a flag), or ``default`` when it names none."""
    return next((a.i for a in node.attribute if a.name == name), default)


def opset(proto: Any) -> int:
    """The model's version of the default ONNX operator set."""
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
