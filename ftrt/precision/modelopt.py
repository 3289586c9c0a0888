"""NVIDIA ModelOpt's ONNX tools when installed: its INT8 Q/DQ quantizer and AutoCast (mixed FP16).

ftrt hands them the decisions it makes itself (Conv-only INT8 with the kept
convolutions in FP32, per-channel weights; FP16 with the reductions and the
output head in FP32, FP32 I/O), so either path gives a model of the same
shape, measured by the same report. ModelOpt drops ``metadata_props``, like
onnxruntime's quantizer: ``calibrate_int8`` and ``convert_fp16_model`` write
the FP32 model's metadata onto whatever either path returns.

ModelOpt's ``[onnx]`` extra pins onnxruntime-gpu (and onnx) to versions of its
own, so it lives in its own environment rather than in ftrt's extras.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx

from ftrt.onnx.fp16 import FP32_OPS, fp32_nodes, name_nodes

# ftrt's calibration method names -> ModelOpt's (it has no percentile calibrator).
METHODS = {"minmax": "max", "entropy": "entropy"}


def version() -> str | None:
    """ModelOpt's version when its ONNX tools import here, else None."""
    try:
        import modelopt
        import modelopt.onnx.autocast  # noqa: F401
        import modelopt.onnx.quantization  # noqa: F401
    except Exception:  # noqa: BLE001 - missing, or installed without its onnx extra / against another ORT
        return None
    return str(getattr(modelopt, "__version__", "unknown"))


def choose(requested: str, what: str) -> str:
    """``auto`` -> ``modelopt`` when installed, else ``ftrt``; asking for ModelOpt where it is missing is an error."""
    if requested not in ("auto", "ftrt", "modelopt"):
        raise ValueError(f"unknown {what} {requested!r}; choose auto, ftrt or modelopt")
    if requested == "auto":
        return "modelopt" if version() else "ftrt"
    if requested == "modelopt" and not version():
        raise ValueError(f"{what} modelopt: NVIDIA ModelOpt is not installed here "
                         "(pip install 'nvidia-modelopt[onnx]', in its own environment: it pins onnxruntime-gpu)")
    return requested


def opset_of(proto: onnx.ModelProto) -> int:
    return next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))


class _Reader:
    """ONNX Runtime's CalibrationDataReader protocol over samples (ModelOpt calibrates through ORT)."""

    def __init__(self, samples: Iterator[dict[str, np.ndarray]]) -> None:
        self._it = samples

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)

    def rewind(self) -> None:  # ModelOpt may ask; one pass is all ftrt gives it
        pass


def quantize_int8(named: Path, samples: Iterator[dict[str, np.ndarray]], out: Path, method: str,
                  keep: list[str], opset: int) -> onnx.ModelProto:
    """Q/DQ INT8 through ModelOpt: Conv only, ``keep`` in FP32, FP32 elsewhere (not FP16: ORT CPU runs it too).

    ``method`` is one of :data:`METHODS` (``calibrate_int8`` refuses the others before any work).
    """
    from modelopt.onnx.quantization import quantize

    quantize(str(named), quantize_mode="int8", calibration_data_reader=_Reader(samples),
             calibration_method=METHODS[method], calibration_eps=["cpu"], op_types_to_quantize=["Conv"],
             nodes_to_exclude=[f"^{re.escape(n)}$" for n in keep], high_precision_dtype="fp32",
             opset=opset, output_path=str(out), log_level="WARNING")
    return onnx.load(str(out))


def autocast_fp16(model: str | Path, sample: np.ndarray, input_name: str = "image") -> onnx.ModelProto:
    """Mixed FP16 through ModelOpt AutoCast with ftrt's FP32 rules (reductions, output head), FP32 I/O.

    ``sample`` (1, 3, H, W) is the reference input AutoCast runs: its default random input has every
    dynamic dimension 1, which the restorer's reflect padding cannot take.
    """
    from modelopt.onnx.autocast import convert_to_mixed_precision

    source = name_nodes(onnx.load(str(model)))
    with tempfile.TemporaryDirectory(prefix="ftrt-autocast.") as tmp:
        named, data = Path(tmp) / "named.onnx", Path(tmp) / "sample.npz"
        onnx.save(source, str(named))
        np.savez(data, **{input_name: np.ascontiguousarray(sample, dtype=np.float32)})
        half = convert_to_mixed_precision(
            str(named), low_precision_type="fp16", keep_io_types=True, providers=["cpu"], opset=opset_of(source),
            op_types_to_exclude=list(FP32_OPS), nodes_to_exclude=[f"^{re.escape(n)}$" for n in fp32_nodes(source)],
            calibration_data=str(data))
    return half
