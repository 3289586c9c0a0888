"""Explicit INT8: activation ranges from real fundus images, then a Q/DQ ONNX.

The Q/DQ graph is what TensorRT 11 builds as INT8 (strongly typed) and what
ONNX Runtime runs on any CPU, so the accuracy measured here is the accuracy
deployed. Quantization is symmetric (zero point 0), per-channel for weights,
as TensorRT requires. Only convolutions are quantized; the first and last
convolution stay FP32 by default (``keep auto``), and so does everything
that is not a convolution (LayerNorm, GELU, the residual adds, tanh).
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from ftrt.onnx.fp16 import scoped_nodes
from ftrt.precision.data import FundusCalibrationReader

METHODS = ("minmax", "entropy", "percentile")


@dataclass
class Ranges:
    """Per-tensor (low, high) activation ranges and the method that produced them."""

    method: str
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)

    def amax(self, name: str) -> float:
        lo, hi = self.ranges[name]
        return max(abs(lo), abs(hi))

    def amaxes(self) -> dict[str, float]:
        return {name: self.amax(name) for name in self.ranges}


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """onnxruntime.quantization warns through the root logger on every call ("consider pre-processing")."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _ort_method(method: str):  # noqa: ANN202 - onnxruntime enum
    from onnxruntime.quantization import CalibrationMethod

    return {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
            "percentile": CalibrationMethod.Percentile}[method]


def collect_ranges(model_path: str | Path, reader: FundusCalibrationReader, method: str = "minmax",
                   chunk: int = 4) -> Ranges:
    """Run the FP32 model on every calibration sample and return each activation tensor's range.

    Entropy and percentile use 2048 histogram bins (ORT's ``quantize_static``
    default of 128 makes entropy collapse to the MinMax result).
    """
    if method not in METHODS:
        raise ValueError(f"unknown calibration method {method!r}; choose {', '.join(METHODS)}")
    from onnxruntime.quantization.calibrate import create_calibrator

    extra: dict[str, object] = {"symmetric": True}
    if method != "minmax":
        extra["num_bins"] = 2048
    if method == "percentile":
        extra["percentile"] = 99.99
    with tempfile.TemporaryDirectory(prefix="ftrt-calib.") as tmp:
        calibrator = create_calibrator(Path(model_path), None, augmented_model_path=str(Path(tmp) / "aug.onnx"),
                                       calibrate_method=_ort_method(method), extra_options=extra)
        for part in reader.chunks(chunk):
            calibrator.collect_data(part)
        data = calibrator.compute_data()
    out = Ranges(method)
    for name in data:
        lo, hi = data[name].range_value
        out.ranges[name] = (float(np.asarray(lo).min()), float(np.asarray(hi).max()))
    return out


# Exported node-name parts of DenseUNet's affine and global colour heads.
COLOUR_HEADS = ("/affine/", "/global_head/")


def conv_nodes(proto: onnx.ModelProto) -> list[str]:
    return [n.name for n in proto.graph.node if n.op_type == "Conv"]


def default_keep(proto: onnx.ModelProto) -> list[str]:
    """``--keep auto``: the first convolution (sees raw pixels), the last (decides the output value), the
    colour heads' (one gain per pixel or per photograph: an INT8 error there tints the whole image, for a
    negligible share of the work) and those under the FP32 scopes (a chain's noise gate: its threshold)."""
    scoped = set(scoped_nodes(proto))
    all_convs = conv_nodes(proto)
    convs = [c for c in all_convs if c not in scoped]
    keep = {c for c in all_convs if c in scoped} | {c for c in convs if any(h in c for h in COLOUR_HEADS)}
    if convs:
        keep |= {convs[0], convs[-1]}
    return sorted(keep)


def quantize_qdq(model_path: str | Path, out: str | Path, ranges: Ranges, keep: list[str]) -> onnx.ModelProto:
    """Write a Q/DQ INT8 model: per-channel symmetric weights, symmetric activations, Conv only."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import TensorData, TensorsData

    require_range_cache()
    from onnxruntime.quantization.calibrate import save_tensors_data

    data = TensorsData(_ort_method(ranges.method), {
        k: TensorData(lowest=np.float32(lo), highest=np.float32(hi)) for k, (lo, hi) in ranges.ranges.items()})
    with tempfile.TemporaryDirectory(prefix="ftrt-q.") as tmp:
        cache = Path(tmp) / "ranges.json"
        save_tensors_data(data, cache)
        with _quiet_root_logger():
            quantize_static(
                str(model_path), str(out), calibration_data_reader=None, calibration_cache_path=str(cache),
                quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                per_channel=True, op_types_to_quantize=["Conv"], nodes_to_exclude=list(keep),
                calibrate_method=_ort_method(ranges.method),
                extra_options={"ActivationSymmetric": True, "WeightSymmetric": True},
            )
    return onnx.load(str(out))


def require_range_cache() -> None:
    """ftrt's Q/DQ writer hands ``quantize_static`` precomputed ranges, which onnxruntime reads from 1.27 on."""
    import onnxruntime
    from onnxruntime.quantization import calibrate

    if not hasattr(calibrate, "save_tensors_data"):
        raise ValueError(f"ftrt's own Q/DQ writer needs onnxruntime >= 1.27 (quantize_static reading precomputed "
                         f"ranges); this is {onnxruntime.__version__}: upgrade it, or use --quantizer modelopt")


def named_copy(model_path: str | Path, dest: Path) -> Path:
    """A copy of the model with every node named (``nodes_to_exclude`` and reports refer to names)."""
    from ftrt.onnx.fp16 import name_nodes

    proto = name_nodes(onnx.load(str(model_path)))
    onnx.save(proto, str(dest))
    return dest


@dataclass
class KeepSearch:
    keep: list[str]
    history: list[dict[str, object]] = field(default_factory=list)


Quantizer = Callable[[Path, list[str]], object]  # (output path, nodes kept FP32) -> writes a Q/DQ model


def search_keep(model_path: Path, quantize: Quantizer, base_keep: list[str], score: Callable[[Path], float],
                target_db: float, max_extra: int = 8, log: Callable[[str], None] = print) -> KeepSearch:
    """Keep more convolutions in FP32 until ``score`` (PSNR vs FP32, dB) reaches ``target_db``.

    Sensitivity of each quantized convolution is measured alone: only that
    layer in INT8, everything else FP32, PSNR vs FP32. The least tolerant are
    kept first, one at a time, re-measuring the whole model after each.
    """
    proto = onnx.load(str(model_path))
    result = KeepSearch(list(base_keep))
    with tempfile.TemporaryDirectory(prefix="ftrt-sens.") as tmp:
        trial = Path(tmp) / "trial.onnx"
        quantize(trial, result.keep)
        db = score(trial)
        result.history.append({"keep": list(result.keep), "psnr_db": db})
        if db >= target_db:
            return result
        candidates = [n for n in conv_nodes(proto) if n not in result.keep]
        log(f"INT8 PSNR {db:.1f} dB < {target_db:.1f} dB: measuring {len(candidates)} layers one by one")
        sensitivity = {}
        all_convs = conv_nodes(proto)
        for name in candidates:
            quantize(trial, [n for n in all_convs if n != name])
            sensitivity[name] = score(trial)
        for name in sorted(sensitivity, key=sensitivity.get)[:max_extra]:
            result.keep.append(name)
            quantize(trial, result.keep)
            db = score(trial)
            result.history.append({"keep": list(result.keep), "psnr_db": db,
                                   "layer_alone_psnr_db": sensitivity[name]})
            log(f"  keep {name} in FP32 (alone: {sensitivity[name]:.1f} dB): model {db:.1f} dB")
            if db >= target_db:
                break
    return result
