"""Channel LayerNorms with their two means taken as matrix products, for ONNX Runtime's CPU provider.

ftrt's restorers export LayerNorm2d as ReduceMean over the channel axis, Sub,
Mul, a second ReduceMean, Add eps, Sqrt and a division, all on NCHW tensors.
ONNX Runtime's CPU ReduceMean over axis 1 of an NCHW tensor is slow (res-l,
256x256: 17 ms for its 38 channel means, 5 % of the run). On the (N, C, H*W)
view the same mean is a (1 x C) by (C x H*W) matrix product with every entry
1/C, which MLAS runs at memory speed (4.5 ms for the same 38). The element-wise
ops between the means run on the same view and the result is reshaped back
once. The sums run in channel order either way: the shipped res-s gives the
same output as without this rewrite to 1.2e-7.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ftrt.onnx.graph import attribute, constants, install_nodes

if TYPE_CHECKING:
    import onnx

_ELEMENTWISE = {"Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Reciprocal"}


def _channel_axis_only(node: "onnx.NodeProto", consts: dict[str, np.ndarray]) -> bool:
    """A ReduceMean over axis 1 alone that keeps its dims (axes as attribute before opset 18, input after)."""
    if node.op_type != "ReduceMean" or node.domain not in ("", "ai.onnx") or attribute(node, "keepdims", 1) != 1:
        return False
    axes = attribute(node, "axes")
    if axes is None and len(node.input) > 1 and node.input[1] in consts:
        axes = consts[node.input[1]].tolist()
    return axes is not None and [int(a) for a in axes] == [1]  # type: ignore[attr-defined]


def _shapes(model: "onnx.ModelProto") -> dict[str, tuple[int, list[int | None]]]:
    """Element type and dims of every tensor shape inference can tell."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - a graph shape inference rejects keeps its LayerNorms as they are
        return {}
    out = {}
    for v in list(inferred.graph.value_info) + list(inferred.graph.input):
        t = v.type.tensor_type
        if t.HasField("shape"):
            out[v.name] = (t.elem_type, [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim])
    return out


class _Norm:
    """One channel normalisation: the tensor it reads, the nodes that run on the (N, C, H*W) view."""

    def __init__(self, x: str, channels: int) -> None:
        self.x = x
        self.channels = channels
        self.full: set[str] = set()  # on the view, with C channels
        self.stat: set[str] = set()  # on the view, with one channel (a mean and what follows it)
        self.exits: set[str] = set()  # full tensors read outside: reshaped back to NCHW under their own names
        self.nodes: list["onnx.NodeProto"] = []

    def kind(self, name: str) -> str | None:
        if name == self.x or name in self.full:
            return "full"
        return "stat" if name in self.stat else None


def _collect(first: "onnx.NodeProto", x: str, channels: int, nodes: list["onnx.NodeProto"],
             consts: dict[str, np.ndarray]) -> _Norm:
    """Grow the normalisation from its first mean: every later node whose inputs are all on the view or scalars."""
    norm = _Norm(x, channels)
    norm.stat.add(first.output[0])
    norm.nodes.append(first)
    for node in nodes[nodes.index(first) + 1:]:
        if _channel_axis_only(node, consts) and norm.kind(node.input[0]) == "full" and node.input[0] != x:
            norm.stat.add(node.output[0])
        elif node.op_type in _ELEMENTWISE and node.domain in ("", "ai.onnx") and len(node.output) == 1:
            kinds = [norm.kind(i) for i in node.input]
            scalars = all(k is not None or (i in consts and consts[i].size == 1) for i, k in zip(node.input, kinds))
            if not scalars or not any(k in ("full", "stat") and i != x for i, k in zip(node.input, kinds)):
                continue
            (norm.full if "full" in kinds else norm.stat).add(node.output[0])
        else:
            continue
        norm.nodes.append(node)
    return norm


def channel_norms_as_matmul(model: "onnx.ModelProto") -> list[str]:
    """Rewrite, in place, each FP32 channel normalisation that starts at a ReduceMean over axis 1;
    returns the names of those first means. One whose per-pixel statistic is read outside it is left alone."""
    from onnx import TensorProto, helper, numpy_helper

    if any(a.type in (helper.AttributeProto.GRAPH, helper.AttributeProto.GRAPHS) for n in model.graph.node
           for a in n.attribute):
        return []  # control flow: subgraphs may read tensors this pass would rename
    consts = constants(model)
    nodes = list(model.graph.node)
    if not any(_channel_axis_only(n, consts) for n in nodes):
        return []
    shapes = _shapes(model)
    graph_outputs = {o.name for o in model.graph.output}
    taken: set[int] = set()
    norms: list[_Norm] = []
    for node in nodes:
        if id(node) in taken or not _channel_axis_only(node, consts):
            continue
        elem, dims = shapes.get(node.input[0], (0, []))
        if elem != TensorProto.FLOAT or len(dims) != 4 or not dims[1]:
            continue
        norm = _collect(node, node.input[0], int(dims[1]), nodes, consts)
        inside = {id(n) for n in norm.nodes}
        read_outside = {i for n in nodes if id(n) not in inside for i in n.input} | graph_outputs
        if norm.stat & read_outside or any(id(n) in taken for n in norm.nodes):
            continue
        norm.exits = norm.full & read_outside
        taken |= inside
        norms.append(norm)
    if not norms:
        return []

    inits = model.graph.initializer
    replaced: dict[int, list["onnx.NodeProto"]] = {}
    for k, norm in enumerate(norms):
        p = f"ftrt_cnorm{k}_"
        inits.append(numpy_helper.from_array(np.array([0, norm.channels, -1], np.int64), p + "view"))
        inits.append(numpy_helper.from_array(np.full((1, norm.channels), 1.0 / norm.channels, np.float32), p + "mean"))
        names = {norm.x: p + "x"}
        for n in norm.nodes:
            names[n.output[0]] = p + n.output[0].strip("/").replace("/", "_")
        first = norm.nodes[0]
        out = [helper.make_node("Reshape", [norm.x, p + "view"], [names[norm.x]], name=p + "view"),
               helper.make_node("Shape", [norm.x], [p + "shape"], name=p + "shape")]
        for n in norm.nodes:
            if n.op_type == "ReduceMean":
                new = helper.make_node("MatMul", [p + "mean", names[n.input[0]]], [names[n.output[0]]],
                                       name=(n.name or names[n.output[0]]) + "_matmul")
            else:
                ins = []
                for i in n.input:
                    if i in names:
                        ins.append(names[i])
                    elif consts[i].ndim > 0:  # a (1, 1, 1, 1) constant would broadcast the view back to 4-D
                        scalar = p + f"scalar{len(inits)}"
                        inits.append(numpy_helper.from_array(consts[i].reshape(()), scalar))
                        ins.append(scalar)
                    else:
                        ins.append(i)
                new = helper.make_node(n.op_type, ins, [names[n.output[0]]], name=(n.name or names[n.output[0]]))
                new.attribute.extend(n.attribute)
            step = [new]
            if n.output[0] in norm.exits:
                step.append(helper.make_node("Reshape", [names[n.output[0]], p + "shape"], [n.output[0]],
                                             name=p + "back" + str(len(replaced))))
            replaced[id(n)] = (out + step) if n is first else step
            out = []
    new_nodes = [m for n in nodes for m in replaced.get(id(n), [n])]
    # the ReduceMeans' axes inputs (opset 18+) and scalars only the replaced nodes read go with them
    install_nodes(model, new_nodes, droppable={i for norm in norms for n in norm.nodes for i in n.input})
    gone = {n.output[0] for norm in norms for n in norm.nodes} - {o for n in new_nodes for o in n.output}
    kept_info = [v for v in model.graph.value_info if v.name not in gone]
    del model.graph.value_info[:]
    model.graph.value_info.extend(kept_info)
    return [norm.nodes[0].name or norm.nodes[0].output[0] for norm in norms]
