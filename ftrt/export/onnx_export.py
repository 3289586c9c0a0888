"""Export ftrt models to ONNX.

A restorer accepts any batch, height and width >= 32: padding to the model's
multiple happens inside the graph (reflect Pad computed from the input's
shape), so no caller ever pads. The readability classifier has a dynamic batch
and a fixed square input (its preprocessing resizes every photograph). Opset 17 goes through the
TorchScript exporter (TensorRT 8.6 / JetPack 6.0 parse opset <= 17; the dynamo
exporter cannot write a reflect Pad below 18); opset 18+ through torch.export.
"""

from __future__ import annotations

import io
import os
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx
import torch

from ftrt import __version__
from ftrt.io import atomic_write
from ftrt.onnx.metadata import build_metadata, model_metadata, set_metadata
from ftrt.export.parity import PARITY_SHAPES, parity_check

INPUT_NAME = "image"
OUTPUT_NAME = "restored"
CLASSIFIER_OUTPUT = "probs"


@dataclass(frozen=True)
class GraphSpec:
    """What differs between model kinds at export: names, dynamic dims, the shapes parity runs on."""

    output_name: str
    dynamic: tuple[int, ...]  # NCHW axes of the input that are dynamic
    output_dynamic: tuple[int, ...]
    sample: tuple[int, int, int, int]
    parity_shapes: tuple[tuple[int, int, int, int], ...]


def graph_spec(model: torch.nn.Module) -> GraphSpec:
    if getattr(model, "task", "") == "readability":
        side = int(model.input_side)
        return GraphSpec(CLASSIFIER_OUTPUT, (0,), (0,), (1, 3, side, side), ((1, 3, side, side), (3, 3, side, side)))
    return GraphSpec(OUTPUT_NAME, (0, 2, 3), (0, 2, 3), (1, 3, 64, 64), PARITY_SHAPES)


_AXIS_NAMES = {0: "batch", 2: "height", 3: "width"}


@dataclass
class ExportResult:
    path: Path
    opset: int
    simplified: bool
    parity: list[dict[str, Any]] = field(default_factory=list)
    fp16_psnr_db: float | None = None
    metadata: dict[str, str] = field(default_factory=dict)


def _export_legacy(model: torch.nn.Module, spec: GraphSpec, opset: int) -> onnx.ModelProto:
    return export_torchscript(model, (torch.rand(*spec.sample),), [INPUT_NAME], [spec.output_name],
                              {INPUT_NAME: {a: _AXIS_NAMES[a] for a in spec.dynamic},
                               spec.output_name: {a: _AXIS_NAMES[a] for a in spec.output_dynamic}}, opset)


def export_torchscript(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], input_names: list[str],
                       output_names: list[str], dynamic_axes: dict[str, dict[int, str]], opset: int) -> onnx.ModelProto:
    """The TorchScript exporter (opset <= 17) in memory, its warnings silenced."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, inputs, buf, dynamo=False, opset_version=opset, input_names=input_names,
                          output_names=output_names, dynamic_axes=dynamic_axes, do_constant_folding=True)
    return onnx.load_from_string(buf.getvalue())


def _pin_static_output_dims(proto: onnx.ModelProto, spec: GraphSpec, shape: tuple[int, ...]) -> None:
    """Write the output's static dims into the graph (in place).

    The exporter's own shape inference can lose one: behind the global colour head's FOV statistics
    the restorer's channel count becomes symbolic, and TensorRT and ``ftrt info`` read the declared shape.
    """
    for axis, dim in enumerate(proto.graph.output[0].type.tensor_type.shape.dim):
        if axis not in spec.output_dynamic:
            dim.Clear()
            dim.dim_value = shape[axis]


def _export_dynamo(model: torch.nn.Module, spec: GraphSpec, opset: int) -> onnx.ModelProto:
    limits = {0: (1, 256), 2: (32, 16384), 3: (32, 16384)}
    dims = {a: torch.export.Dim(_AXIS_NAMES[a], min=limits[a][0], max=limits[a][1]) for a in spec.dynamic}
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = os.path.join(tmp, "model.onnx")
        torch.onnx.export(model, (torch.rand(*spec.sample),), path, dynamo=True, opset_version=opset,
                          external_data=False, input_names=[INPUT_NAME], output_names=[spec.output_name],
                          dynamic_shapes={"x": dims}, verbose=False)
        return onnx.load(path)


def _simplify(proto: onnx.ModelProto) -> tuple[onnx.ModelProto, bool]:
    try:
        import onnxslim
    except ImportError:
        return proto, False
    return onnxslim.slim(proto), True


def export_onnx(
    model: torch.nn.Module,
    out: str | Path,
    *,
    preset: str,
    card_id: str = "",
    opset: int = 17,
    simplify: bool = True,
    check: bool = True,
    fp16: bool = False,
    tolerance: float = 1e-4,
    work_side: int | None = None,
    extra_metadata: dict[str, str] | None = None,
) -> ExportResult:
    """Export ``model`` (a restorer or readability classifier) to ``out``; raises ``ParityError`` above ``tolerance``."""
    model = model.eval()
    out = Path(out)
    spec = graph_spec(model)
    with torch.no_grad():
        proto = _export_legacy(model, spec, opset) if opset <= 17 else _export_dynamo(model, spec, opset)
        _pin_static_output_dims(proto, spec, tuple(model(torch.rand(*spec.sample)).shape))
    # FP16 conversion runs on the raw export: after simplification constants are shared between
    # nodes that stay FP32 and nodes that become FP16, which the converter cannot type.
    half = None
    if fp16:
        from ftrt.onnx.fp16 import convert_fp16

        half = convert_fp16(proto)
    simplified = False
    if simplify:
        proto, simplified = _simplify(proto)
        if half is not None:
            half, _ = _simplify(half)
    meta = build_metadata(preset=preset, card_id=card_id, opset=opset,
                          pad_multiple=int(getattr(model, "pad_multiple", 1)), precision="fp32",
                          ftrt_version=__version__, work_side=work_side)
    meta.update(model_metadata(model))
    meta.update(extra_metadata or {})
    set_metadata(proto, meta)
    onnx.checker.check_model(proto, full_check=True)
    proto = onnx.shape_inference.infer_shapes(proto, strict_mode=True)
    result = ExportResult(path=out, opset=opset, simplified=simplified, metadata=meta)
    if check:
        result.parity = parity_check(model, proto.SerializeToString(), spec.parity_shapes, tolerance)
    if half is not None:
        from ftrt.onnx.fp16 import psnr_vs_fp32

        result.fp16_psnr_db = psnr_vs_fp32(proto, half)
        result.metadata = {**meta, "precision": "fp16-mixed"}
        set_metadata(half, result.metadata)
        onnx.checker.check_model(half, full_check=True)
        _save(half, out)
    else:
        _save(proto, out)
    return result


def _save(proto: onnx.ModelProto, out: Path) -> None:
    atomic_write(out, lambda tmp: onnx.save(proto, tmp))
