"""Grouped 5x5 convolutions run on row pairs, for ONNX Runtime's blocked (NCHWc) CPU kernels.

ftrt's dense blocks use groups of 8 channels. On an AVX-512 CPU the NCHWc
kernels want 16 channels per group, and widening two groups into one with a
block-diagonal weight (ftrt.onnx.cpu_layout) spends half of the
multiply-adds on zeros. Folding each pair of image rows into the channels
instead (space-to-depth along the height, each 8-channel group becoming 16
channels: 8 for even rows, 8 for odd rows) turns the 5x5 kernel into a 3x5
kernel over 16 real input channels per group: 83 % of the multiply-adds are
real instead of 50 %. It computes the same sums (the added terms are exact
zeros), at the price of a reshape and a transpose into the row-pair layout
and back; two convolutions in a row, or two summed, share them.

A row pair needs an even height, which a graph with dynamic sizes does not
promise in general. ftrt's restorers pad their input to ``pad_multiple`` (in
their metadata) inside the graph, so ``height_multiples`` follows that
multiple through strided convs, upsampling and element-wise ops, and only
convolutions whose input height is a known multiple of 2 are rewritten.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, NamedTuple

import numpy as np

from ftrt.onnx.graph import attribute, constants, conv_geometry, install_nodes, readers

if TYPE_CHECKING:
    import onnx

# Ops whose output has the height of their (broadcast) inputs.
_SAME_HEIGHT = {
    "Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Erf", "Tanh", "Sigmoid", "Relu", "Gelu", "FastGelu", "Where",
    "Cast", "Identity", "Clip", "Neg", "Abs", "Exp", "Log", "Reciprocal", "Softplus", "LeakyRelu", "HardSigmoid",
    "HardSwish", "Min", "Max", "BatchNormalization", "InstanceNormalization",
}
_REDUCTIONS = {"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceL2", "ReduceSumSquare"}
GROUP_FACTOR = 2  # rows per pair: 2 turns 8-channel groups into 16, the AVX-512 block


def _keeps_height(node: "onnx.NodeProto", consts: dict[str, np.ndarray]) -> bool:
    """Reductions and concatenations that leave axis 2 (height) alone."""
    if node.op_type == "Concat":
        return int(attribute(node, "axis", 0)) in (0, 1, -3, -4)  # type: ignore[call-overload]
    axes = attribute(node, "axes")
    if axes is None and len(node.input) > 1 and node.input[1]:
        axes = consts.get(node.input[1])
    if axes is None:
        return False  # all axes: the height is reduced away
    return all(int(a) in (0, 1, -3, -4) for a in np.asarray(axes).ravel())


def height_multiples(model: "onnx.ModelProto", pad_multiple: int) -> dict[str, int]:
    """For each 4-D activation, a number its height is known to be a multiple of (absent: unknown).

    Starts at the Pad nodes that pad a graph input to ``pad_multiple`` (ftrt's
    restorers do that first thing) and follows it in graph order.
    """
    consts = constants(model)
    inputs = {i.name for i in model.graph.input}
    known: dict[str, int] = {}
    for node in model.graph.node:
        ins = [known.get(n, 1) for n in node.input if n and n not in consts]
        m = max(ins, default=1)
        out = 1
        if node.op_type == "Pad" and node.input[0] in inputs and pad_multiple > 1:
            out = pad_multiple
        elif node.op_type in _SAME_HEIGHT:
            out = m
        elif node.op_type in _REDUCTIONS or node.op_type == "Concat":
            out = m if _keeps_height(node, consts) else 1
        elif node.op_type == "Conv" and node.input[1] in consts and (geometry := conv_geometry(node)):
            kh = consts[node.input[1]].shape[2]
            (sh, _), (dh, _), pads = geometry
            # out = (H + top + bottom - dh*(kh-1) - 1) / sh + 1, which is H / sh exactly when this is 0
            if m % sh == 0 and pads[0] + pads[2] - dh * (kh - 1) - 1 + sh == 0:
                out = m // sh
        elif node.op_type in ("Resize", "Upsample"):
            scales = consts.get(node.input[-1] if node.op_type == "Upsample" else (list(node.input) + ["", ""])[2])
            if scales is not None and scales.size == 4 and float(scales[2]).is_integer() and scales[2] >= 1:
                out = m * int(scales[2])
        if out > 1:
            for name in node.output:
                known[name] = out
    return known


def row_pair_weight(weight: np.ndarray, groups: int) -> np.ndarray:
    """Weight (C, g, 5, kw) of a square-grouped 5x5 conv as the (2C, 2g, 3, kw) conv over row pairs.

    Channel ``(group, phase, k)`` of the row-pair tensor is channel ``group*g + k``
    of row ``2*i + phase``; kernel row ``r`` reads row pair ``i + r - 1``, i.e.
    original row offset ``2*(r-1) + phase_in - phase_out``.
    """
    cout, g, kh, kw = weight.shape
    assert kh == 5 and cout == groups * g
    out = np.zeros((2 * cout, 2 * g, 3, kw), dtype=weight.dtype)
    for grp in range(groups):
        src = weight[grp * g:(grp + 1) * g]
        for p_out in range(2):
            rows = slice(grp * 2 * g + p_out * g, grp * 2 * g + (p_out + 1) * g)
            for p_in in range(2):
                for r in range(3):
                    dy = 2 * (r - 1) + p_in - p_out
                    if abs(dy) <= 2:
                        out[rows, p_in * g:(p_in + 1) * g, r] = src[:, :, dy + 2]
    return out


def row_pair_bias(bias: np.ndarray, groups: int) -> np.ndarray:
    g = bias.size // groups
    return np.repeat(bias.reshape(groups, 1, g), 2, axis=1).ravel()


class Emitter:
    """Appends the reshape/transpose nodes that move a tensor into or out of a layout with rows in the channels."""

    def __init__(self, model: "onnx.ModelProto", prefix: str = "ftrt_rowpair") -> None:
        self.model = model
        self.prefix = prefix
        self.nodes: list["onnx.NodeProto"] = []
        self.created: list[str] = []

    def fresh(self, stem: str) -> str:
        self.created.append(f"{self.prefix}_{len(self.created) + 1}_{stem}")
        return self.created[-1]

    def const(self, values: Iterable[int]) -> str:
        from onnx import numpy_helper

        name = self.fresh("shape")
        self.model.graph.initializer.append(numpy_helper.from_array(np.array(list(values), np.int64), name))
        return name

    def node(self, op: str, inputs: list[str], output: str | None = None, **attrs: Any) -> str:
        from onnx import helper

        output = output or self.fresh(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [output], name=self.fresh(op), **attrs))
        return output

    def reshape(self, x: str, head: list[int], width: str, output: str | None = None) -> str:
        """Reshape ``x`` to ``head + [W]`` where W is the last dim of ``width`` (a 1-D shape tensor)."""
        target = self.node("Concat", [self.const(head), width], axis=0)
        return self.node("Reshape", [x, target], output)

    def width(self, x: str) -> str:
        return self.node("Gather", [self.node("Shape", [x]), self.const([3])], axis=0)

    def to_pairs(self, x: str, channels: int, g: int) -> str:
        """(N, C, H, W) -> (N, 2C, H/2, W): channel (group, row phase, k)."""
        w = self.width(x)
        x6 = self.reshape(x, [0, channels // g, g, -1, 2], w)
        t = self.node("Transpose", [x6], perm=[0, 1, 4, 2, 3, 5])
        return self.reshape(t, [0, 2 * channels, -1], w)

    def from_pairs(self, z: str, channels: int, g: int, output: str) -> str:
        """Inverse of ``to_pairs``, written to ``output``; ``channels`` is the original C."""
        w = self.width(z)
        z6 = self.reshape(z, [0, channels // g, 2, g, -1], w)
        t = self.node("Transpose", [z6], perm=[0, 1, 3, 4, 2, 5])
        return self.reshape(t, [0, channels, -1], w, output)


def _eligible(node: "onnx.NodeProto", inits: dict[str, "onnx.TensorProto"], block: int) -> int:
    """Groups of a conv the row-pair form serves (square 8-channel groups on a 16 block, 5 rows, stride 1), else 0."""
    import onnx

    if node.op_type != "Conv" or node.domain not in ("", "ai.onnx") or len(node.input) < 2:
        return 0
    tensor = inits.get(node.input[1])
    groups = int(attribute(node, "group", 1))  # type: ignore[call-overload]
    if tensor is None or tensor.data_type != onnx.TensorProto.FLOAT or groups <= 1 or len(tensor.dims) != 4:
        return 0
    cout, g, kh, _ = tensor.dims
    if cout != groups * g or kh != 5 or GROUP_FACTOR * g != block:
        return 0
    geometry = conv_geometry(node)
    if geometry is None or geometry[:2] != ([1, 1], [1, 1]) or geometry[2][0] != 2 or geometry[2][2] != 2:
        return 0
    return groups


def row_pair_convs(model: "onnx.ModelProto", block: int, pad_multiple: int) -> list[str]:
    """Rewrite, in place, the grouped 5x5 convs whose input height is known even; returns their names."""
    import onnx
    from onnx import numpy_helper

    if block <= 0 or pad_multiple < 2:
        return []
    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for n in model.graph.node
           for a in n.attribute):
        return []  # control flow: subgraphs may read tensors this pass would rename or drop
    multiples = height_multiples(model, pad_multiple)
    inits = {t.name: t for t in model.graph.initializer}
    uses = {name: len(nodes) for name, nodes in readers(model).items()}
    graph_outputs = {o.name for o in model.graph.output}
    emit = Emitter(model)
    paired: dict[str, _RowPairs] = {}  # original tensor -> its row-pair form
    leaving: dict[str, list["onnx.NodeProto"]] = {}  # original tensor -> the nodes that leave the layout
    changed: list[str] = []

    def pairs_of(name: str, channels: int, g: int) -> _RowPairs:
        known = paired.get(name)
        fresh = _RowPairs(emit.to_pairs(name, channels, g), channels, g, emit.fresh("size")) \
            if known is None or known[1:3] != (channels, g) else known
        if known is None:
            paired[name] = fresh
        return fresh  # another grouping of a tensor already paired gets its own copy

    def leave(z: _RowPairs, output: str) -> None:
        start = len(emit.nodes)
        emit.from_pairs(z.tensor, z.channels, z.g, output)
        leaving[output] = emit.nodes[start:]
        paired[output] = z

    for node in list(model.graph.node):
        groups = _eligible(node, inits, block)
        if groups and multiples.get(node.input[0], 1) % 2 == 0:
            w = numpy_helper.to_array(inits[node.input[1]])
            src = pairs_of(node.input[0], w.shape[0], w.shape[1])
            new_w = numpy_helper.from_array(row_pair_weight(w, groups), emit.fresh("weight"))
            model.graph.initializer.append(new_w)
            ins = [src.tensor, new_w.name]
            if len(node.input) > 2 and node.input[2]:
                b = numpy_helper.from_array(row_pair_bias(numpy_helper.to_array(inits[node.input[2]]), groups),
                                            emit.fresh("bias"))
                model.graph.initializer.append(b)
                ins.append(b.name)
            pads = conv_geometry(node)[2]  # type: ignore[index]
            z = emit.node("Conv", ins, group=groups, kernel_shape=[3, w.shape[3]], pads=[1, pads[1], 1, pads[3]])
            leave(src._replace(tensor=z), node.output[0])
            changed.append(node.name or node.output[0])
            continue
        if node.op_type == "Add" and len(node.input) == 2 and all(
                i in leaving and uses.get(i, 0) == 1 and i not in graph_outputs for i in node.input):
            first, second = paired[node.input[0]], paired[node.input[1]]
            if first[1:3] == second[1:3]:  # a sum of two row-pair convs stays in the layout: one way back, not two
                for i in node.input:
                    for dead in leaving.pop(i):
                        emit.nodes.remove(dead)
                leave(first._replace(tensor=emit.node("Add", [first.tensor, second.tensor])), node.output[0])
                continue
        emit.nodes.append(node)
    if changed:
        install_nodes(model, emit.nodes, droppable=set(uses) | set(emit.created))
        _declare_shapes(model, paired.values())
    return changed


class _RowPairs(NamedTuple):
    tensor: str  # (N, 2C, H/2, W)
    channels: int  # C
    g: int  # channels per group
    size: str  # names H/2 and W: tensors with the same size name have the same height and width


def _declare_shapes(model: "onnx.ModelProto", tensors: Iterable[_RowPairs]) -> None:
    """Shapes of the row-pair tensors, with symbolic sizes ONNX Runtime cannot infer through the reshapes.

    Without them it cannot tell that the two convolutions of a sum have the same
    output size, and adds them as a separate pass instead of inside the second
    convolution (its NCHWc kernels take a tensor to add).
    """
    from onnx import TensorProto, helper

    batch = model.graph.input[0].type.tensor_type.shape.dim[0]
    n: int | str | None = batch.dim_param or (batch.dim_value if batch.HasField("dim_value") else None)
    live = {o for node in model.graph.node for o in node.output}
    for t in {t.tensor: t for t in tensors}.values():
        if t.tensor in live:
            model.graph.value_info.append(helper.make_tensor_value_info(
                t.tensor, TensorProto.FLOAT, [n, 2 * t.channels, f"{t.size}_h", f"{t.size}_w"]))
