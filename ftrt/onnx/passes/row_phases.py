"""Convolutions with few output channels computed several output rows at a time, for the NCHWc CPU kernels.

ONNX Runtime's blocked CPU kernels compute output channels in whole blocks (16
on AVX-512, 8 on AVX2). The restorers' last convolution has 3 output channels,
so 13 of the 16 it computes are padding. Computing ``f`` neighbouring output
rows per position instead, as a stride-``f`` convolution whose kernel is
``f - 1`` rows taller and whose ``3 * f`` output channels are the rows, fills
12 of the 16 channels: 2.5x fewer multiply-adds for a 5x5 kernel with f = 4. A
reshape and a transpose of the 3-channel result put the rows back. It needs
the input height to be a known multiple of ``f`` (``height_multiples``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ftrt.onnx.graph import attribute, conv_geometry, install_nodes
from ftrt.onnx.passes.row_pairs import Emitter, height_multiples

if TYPE_CHECKING:
    import onnx


def row_phase_weight(weight: np.ndarray, f: int) -> np.ndarray:
    """Weight (O, I, kh, kw) as the (O*f, I, kh+f-1, kw) weight whose output channel ``o*f + p`` is row ``p``."""
    cout, cin, kh, kw = weight.shape
    out = np.zeros((cout, f, cin, kh + f - 1, kw), dtype=weight.dtype)
    for p in range(f):
        out[:, p, :, p:p + kh] = weight
    return out.reshape(cout * f, cin, kh + f - 1, kw)


def _phases(node: "onnx.NodeProto", inits: dict[str, "onnx.TensorProto"], block: int, multiple: int) -> int:
    """Rows per position for a plain same-height FP32 conv with fewer output channels than a block, else 0."""
    import onnx

    if node.op_type != "Conv" or node.domain not in ("", "ai.onnx") or len(node.input) < 2:
        return 0
    tensor = inits.get(node.input[1])
    if tensor is None or tensor.data_type != onnx.TensorProto.FLOAT or len(tensor.dims) != 4:
        return 0
    cout, _, kh, _ = tensor.dims
    geometry = conv_geometry(node)
    if (int(attribute(node, "group", 1)) != 1 or geometry is None  # type: ignore[call-overload]
            or geometry[:2] != ([1, 1], [1, 1]) or geometry[2][0] + geometry[2][2] != kh - 1):
        return 0
    f = 1
    while cout * f * 2 <= block and multiple % (f * 2) == 0:
        f *= 2
    return f if f > 1 else 0


def row_phase_convs(model: "onnx.ModelProto", block: int, pad_multiple: int) -> list[str]:
    """Rewrite, in place, the narrow-output convs whose input height is a known multiple of their row count."""
    from onnx import numpy_helper

    if block <= 0 or pad_multiple < 2:
        return []
    multiples = height_multiples(model, pad_multiple)
    inits = {t.name: t for t in model.graph.initializer}
    emit = Emitter(model, prefix="ftrt_rowphase")
    changed: list[str] = []
    replaced: set[str] = set()  # the old weights and biases, dropped where nothing else reads them
    for node in list(model.graph.node):
        f = _phases(node, inits, block, multiples.get(node.input[0], 1))
        if not f:
            emit.nodes.append(node)
            continue
        weight = numpy_helper.to_array(inits[node.input[1]])
        cout = weight.shape[0]
        ins = [node.input[0], emit.fresh("weight")]
        model.graph.initializer.append(numpy_helper.from_array(row_phase_weight(weight, f), ins[1]))
        if len(node.input) > 2 and node.input[2]:
            ins.append(emit.fresh("bias"))
            bias = np.repeat(numpy_helper.to_array(inits[node.input[2]]), f)
            model.graph.initializer.append(numpy_helper.from_array(bias, ins[2]))
        pads = conv_geometry(node)[2]  # type: ignore[index]
        z = emit.node("Conv", ins, kernel_shape=[weight.shape[2] + f - 1, weight.shape[3]], strides=[f, 1],
                      pads=pads)
        width = emit.width(z)
        rows = emit.node("Transpose", [emit.reshape(z, [0, cout, f, -1], width)], perm=[0, 1, 3, 2, 4])
        emit.reshape(rows, [0, cout, -1], width, node.output[0])
        changed.append(node.name or node.output[0])
        replaced.update(node.input[1:])
    if changed:
        install_nodes(model, emit.nodes, droppable=replaced)
    return changed
