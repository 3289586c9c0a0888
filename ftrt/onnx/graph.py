"""Small helpers over an ONNX graph, shared by the CPU layout rewrites."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import onnx


def attribute(node: "onnx.NodeProto", name: str, default: object = None) -> object:
    import onnx

    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def conv_geometry(node: "onnx.NodeProto") -> tuple[list[int], list[int], list[int]] | None:
    """A 2-D Conv's (strides, dilations, pads), or None where ``auto_pad`` pads it implicitly."""
    if attribute(node, "auto_pad", b"NOTSET") != b"NOTSET":
        return None
    return ([int(v) for v in attribute(node, "strides", [1, 1])],  # type: ignore[attr-defined]
            [int(v) for v in attribute(node, "dilations", [1, 1])],  # type: ignore[attr-defined]
            [int(v) for v in attribute(node, "pads", [0, 0, 0, 0])])  # type: ignore[attr-defined]


def constants(model: "onnx.ModelProto") -> dict[str, np.ndarray]:
    """Initializers and Constant-node outputs by name."""
    from onnx import numpy_helper

    out = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            out[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return out


def readers(model: "onnx.ModelProto") -> dict[str, list["onnx.NodeProto"]]:
    """The nodes reading each tensor, once per input slot (a node reading a tensor twice is listed twice)."""
    out: dict[str, list["onnx.NodeProto"]] = {}
    for node in model.graph.node:
        for name in node.input:
            out.setdefault(name, []).append(node)
    return out


def install_nodes(model: "onnx.ModelProto", nodes: list["onnx.NodeProto"], droppable: set[str]) -> None:
    """Make ``nodes`` the graph, without the nodes nothing reads any more and the ``droppable``
    initializers they alone read (the replaced weights, the dead ways back from a rewritten layout)."""
    graph_outputs = {o.name for o in model.graph.output}
    while True:
        used = {i for n in nodes for i in n.input} | graph_outputs
        keep = [n for n in nodes if any(o in used for o in n.output)]
        if len(keep) == len(nodes):
            break
        nodes = keep
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    used = {i for n in nodes for i in n.input}
    kept = [t for t in model.graph.initializer if t.name in used or t.name not in droppable]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
