"""FP16 ONNX with FP32 inputs and outputs.

Weights and most activations in FP16; the LayerNorm reductions and the output
head stay FP32 (a channel variance of large activations overflows FP16, and the
last conv + tanh + residual add decide the final 8-bit value).
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import onnx

# Op types kept in FP32 wherever they appear: reductions and their reciprocal square roots.
# The converter's own list is added (ops whose FP16 kernels are missing, and Resize, whose scales must stay FP32).
FP32_OPS = ["ReduceMean", "Sqrt", "Reciprocal", "Div", "Pow"]
# Module scopes whose every node stays FP32 (and out of INT8): the denoiser chain's noise gate
# (ftrt.models.denoise.NoiseGate) averages over the whole FOV and compares a ratio of such averages with a threshold.
# (The converter still passes tensors between two FP32 nodes through FP16, so the gate keeps every value it hands on
# within FP16's range: means, never pixel counts.)
FP32_SCOPES = ("/noise_gate/",)


def head_nodes(proto: onnx.ModelProto) -> list[str]:
    """The last Conv, tanh and residual add stay FP32: they decide the final 8-bit value.

    (The crop Slices after them carry FP32 anyway; blocking them too trips the
    converter's Cast clean-up next to the graph output.)
    """
    nodes = list(proto.graph.node)
    last_conv = max(i for i, n in enumerate(nodes) if n.op_type == "Conv")
    return [n.name for n in nodes[last_conv:] if n.op_type in ("Conv", "Tanh", "Add")]


def scoped_nodes(proto: onnx.ModelProto) -> list[str]:
    """The nodes under :data:`FP32_SCOPES` (named by the exporter after the module that made them)."""
    return [n.name for n in proto.graph.node if n.name.startswith(FP32_SCOPES)]


def fp32_nodes(proto: onnx.ModelProto) -> list[str]:
    """Every node an FP16 conversion keeps in FP32 by name: the output head and the FP32 scopes."""
    return head_nodes(proto) + scoped_nodes(proto)


def name_nodes(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Give every unnamed node a name (in place): block lists and exclude lists refer to nodes by name."""
    for i, n in enumerate(proto.graph.node):
        if not n.name:
            n.name = f"{n.op_type}_{i}"
    return proto


def unshare_constants(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Give every consumer of a shared initializer or Constant its own copy (in place).

    onnxslim deduplicates equal constants across the graph; a constant shared by
    a node that stays FP32 and one that becomes FP16 cannot have one type.
    """
    inits = {t.name: t for t in proto.graph.initializer}
    consts = {n.output[0]: n for n in proto.graph.node if n.op_type == "Constant"}
    seen: dict[str, int] = {}
    new_inits, new_consts = [], []
    for node in proto.graph.node:
        for k, name in enumerate(node.input):
            if name not in inits and name not in consts:
                continue
            seen[name] = seen.get(name, 0) + 1
            if seen[name] == 1:
                continue  # the first consumer keeps the original
            dup = f"{name}__ftrt{seen[name]}"
            if name in inits:
                t = copy.deepcopy(inits[name])
                t.name = dup
                new_inits.append(t)
            else:
                c = copy.deepcopy(consts[name])
                c.output[0] = dup
                c.name = f"{c.name or 'Constant'}__ftrt{seen[name]}"
                new_consts.append(c)
            node.input[k] = dup
    proto.graph.initializer.extend(new_inits)
    # Constants must precede their consumers: put the copies first.
    nodes = new_consts + list(proto.graph.node)
    proto.graph.ClearField("node")
    proto.graph.node.extend(nodes)
    return proto


def convert_fp16(proto: onnx.ModelProto, keep_fp32: list[str] | tuple[str, ...] = ()) -> onnx.ModelProto:
    """FP16 copy of an FP32 graph, FP32 kept for :data:`FP32_OPS`, the output head, :data:`FP32_SCOPES` and the
    nodes named in ``keep_fp32``."""
    from onnxconverter_common import float16

    proto = name_nodes(unshare_constants(copy.deepcopy(proto)))
    # Stale FP32 value_info from shape inference would contradict the converted types.
    proto.graph.ClearField("value_info")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "number will be truncated" for every tiny weight
        half = float16.convert_float_to_float16(
            proto, keep_io_types=True, op_block_list=sorted(set(float16.DEFAULT_OP_BLOCK_LIST) | set(FP32_OPS)),
            node_block_list=fp32_nodes(proto) + list(keep_fp32),
            disable_shape_infer=False,
        )
    return half


def psnr_vs_fp32(fp32: onnx.ModelProto, half: onnx.ModelProto) -> float:
    import onnxruntime as ort

    from ftrt.metrics import psnr

    x = _sample_input()
    a = ort.InferenceSession(fp32.SerializeToString(), providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(half.SerializeToString(), providers=["CPUExecutionProvider"])
    name = a.get_inputs()[0].name
    ya = np.clip(a.run(None, {name: x})[0], 0, 1)
    yb = np.clip(b.run(None, {name: x})[0], 0, 1)
    return psnr(ya, yb)


def _sample_input() -> np.ndarray:
    """The shipped-sample fundus photograph when scikit-image is there, else smooth synthetic texture."""
    import cv2

    try:
        from skimage import data

        img = cv2.resize(data.retina(), (256, 256), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    except ImportError:
        rng = np.random.default_rng(0)
        img = cv2.GaussianBlur(rng.uniform(0, 1, (256, 256, 3)).astype(np.float32), (0, 0), 3)
    return np.ascontiguousarray(img.transpose(2, 0, 1)[None])
