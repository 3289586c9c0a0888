"""Nearest 2x upsampling followed by a 3x3 convolution, computed at the low resolution.

Every 2x2 block of a nearest-upsampled image repeats one pixel, so each of
the four output phases of the 3x3 convolution (even/odd row, even/odd column)
reads only a 2x2 neighbourhood of the low-resolution input, with the kernel
taps that land on the same input pixel summed. Four 2x2 convolutions and a
DepthToSpace give the same output with 16 instead of 36 multiply-adds per
input pixel and channel pair, and the 4x larger upsampled tensor is never
written. The decoder of ftrt's restorers upsamples this way at every stage.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ftrt.onnx.graph import attribute, constants, conv_geometry, install_nodes, readers

if TYPE_CHECKING:
    import onnx

# For output phase 0 the kernel's rows (-1, 0, +1) fall on input rows (-1, 0, 0); for phase 1 on (0, 0, +1).
_TAPS = {0: ((0,), (1, 2)), 1: ((0, 1), (2,))}


def phase_weights(weight: np.ndarray) -> dict[tuple[int, int], np.ndarray]:
    """3x3 weight (O, I, 3, 3) -> the 2x2 weight of each output phase (row, column)."""
    out = {}
    for a, rows in _TAPS.items():
        r = np.stack([weight[:, :, list(t)].sum(axis=2) for t in rows], axis=2)  # (O, I, 2, 3)
        for b, cols in _TAPS.items():
            out[a, b] = np.stack([r[..., list(t)].sum(axis=-1) for t in cols], axis=3).astype(weight.dtype)
    return out


def _is_nearest_2x(node: "onnx.NodeProto", consts: dict[str, np.ndarray]) -> bool:
    if node.op_type != "Resize" or len(node.input) < 3 or (len(node.input) > 3 and node.input[3]):
        return False
    scales = consts.get(node.input[2])
    return (scales is not None and scales.tolist() == [1.0, 1.0, 2.0, 2.0]
            and attribute(node, "mode", b"nearest") == b"nearest"
            and attribute(node, "coordinate_transformation_mode", b"half_pixel") == b"asymmetric"
            and attribute(node, "nearest_mode", b"round_prefer_floor") == b"floor")


def _is_plain_3x3(node: "onnx.NodeProto", inits: dict[str, "onnx.TensorProto"]) -> bool:
    import onnx

    w = inits.get(node.input[1]) if node.op_type == "Conv" and len(node.input) > 1 else None
    return (w is not None and w.data_type == onnx.TensorProto.FLOAT and list(w.dims[2:]) == [3, 3]
            and int(attribute(node, "group", 1)) == 1  # type: ignore[call-overload]
            and conv_geometry(node) == ([1, 1], [1, 1], [1, 1, 1, 1]))


def subpixel_upsampling(model: "onnx.ModelProto") -> list[str]:
    """Rewrite, in place, each nearest-2x Resize read only by a plain 3x3 Conv; returns the Conv names."""
    from onnx import helper, numpy_helper

    consts = constants(model)
    inits = {t.name: t for t in model.graph.initializer}
    read_by = readers(model)
    outputs = {o.name for o in model.graph.output}
    nodes: list["onnx.NodeProto"] = []
    done: set[str] = set()  # convs now computed by their phases
    stale: set[str] = set()  # inputs of the replaced nodes, dropped where nothing else reads them
    changed: list[str] = []
    for node in model.graph.node:
        if node.op_type == "Conv" and node.output[0] in done:
            continue
        convs = read_by.get(node.output[0], []) if node.op_type == "Resize" else []
        if not (_is_nearest_2x(node, consts) and len(convs) == 1 and node.output[0] not in outputs
                and _is_plain_3x3(convs[0], inits)):
            nodes.append(node)
            continue
        conv = convs[0]
        stem = f"ftrt_subpixel_{len(changed)}"
        phases = []
        for (a, b), w in phase_weights(numpy_helper.to_array(inits[conv.input[1]])).items():
            model.graph.initializer.append(numpy_helper.from_array(w, f"{stem}_w{a}{b}"))
            phases.append(f"{stem}_{a}{b}")
            # phase (a, b) reads input rows i-1+a .. i+a and columns j-1+b .. j+b
            nodes.append(helper.make_node("Conv", [node.input[0], f"{stem}_w{a}{b}", *conv.input[2:]],
                                          [phases[-1]], name=phases[-1], kernel_shape=[2, 2],
                                          pads=[1 - a, 1 - b, a, b]))
        nodes.append(helper.make_node("Concat", phases, [f"{stem}_phases"], name=f"{stem}_concat", axis=1))
        # DCR: channel (a*2 + b)*C + c goes to pixel (2i + a, 2j + b), the order the phases were stacked in
        nodes.append(helper.make_node("DepthToSpace", [f"{stem}_phases"], [conv.output[0]], name=f"{stem}_d2s",
                                      blocksize=2, mode="DCR"))
        done.add(conv.output[0])
        stale.update([conv.input[1], *node.input[1:]])
        changed.append(conv.name or conv.output[0])
    if changed:
        install_nodes(model, nodes, droppable=stale)
    return changed
