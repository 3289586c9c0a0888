"""``ftrt calibrate`` and ``ftrt convert --fp16`` as Python functions: decide precision in the ONNX, then report.

Both write the low-precision ONNX with its metadata updated, then measure it
against the FP32 original on held-out photographs. A model below the
threshold is still written (for inspection) but the result carries the
failure, and the CLI exits non-zero.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx

from ftrt.precision.data import FundusCalibrationReader, fundus_crop, parse_shape, select_images
from ftrt.precision import modelopt
from ftrt.precision.int8 import (collect_ranges, default_keep, named_copy, quantize_qdq, require_range_cache,
                                   search_keep)
from ftrt.precision.report import MIN_PSNR, check, precision_report, psnr_score, write_report
from ftrt.engine.calib_cache import DEFAULT_VERSION, write_cache
from ftrt.onnx.metadata import get_metadata, set_metadata
from ftrt.io import atomic_write, read_image


@dataclass
class PrecisionResult:
    output: Path
    precision: str
    report: dict[str, Any]
    failures: list[str]
    report_files: list[Path] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


def _scorer(threads: int | None) -> Any:
    """The shipped readability classifier when present (it screens images and checks decisions), else None."""
    from ftrt.runtime import open_backend
    from ftrt.runtime.models import resolve_model
    from ftrt.runtime.readability import ReadabilityScorer

    try:
        resolve_model("readability", "onnx")
    except FileNotFoundError:
        return None
    return ReadabilityScorer(open_backend("ort", "readability", threads=threads))


def _check_output(model: str | Path, out: str | Path) -> None:
    """The FP32 original is never overwritten by its low-precision copy."""
    if Path(out).resolve() == Path(model).resolve():
        raise ValueError(f"{out}: the output would overwrite the FP32 model; choose another output")


def default_shapes(model: str | Path) -> list[tuple[int, int]]:
    """The model's working resolution (metadata ``work_side``) and 512x512, the common engine size."""
    meta = get_metadata(onnx.load(str(model), load_external_data=False))
    ws = int(meta.get("work_side", 0) or 0)
    return sorted({(ws, ws), (512, 512)} if ws else {(512, 512)})


def _check_restorer(model: str | Path) -> None:
    meta = get_metadata(onnx.load(str(model), load_external_data=False))
    if meta.get("model", "restorer") != "restorer":
        raise ValueError(f"{model}: calibration is for restorers; this is a {meta['model']} model")
    if meta.get("precision", "fp32") != "fp32":
        raise ValueError(f"{model}: already {meta['precision']}; calibrate the FP32 model")


def calibrate_int8(model: str | Path, images: list[str], out: str | Path, *, method: str = "minmax", num: int = 32,
                   shapes: list[str] | None = None, keep: str = "auto", cache: str | Path | None = None,
                   trt_version: int = DEFAULT_VERSION, report_path: str | Path | None = None,
                   min_psnr: float = MIN_PSNR["int8"], eval_num: int = 8, seed: int = 0,
                   threads: int | None = None, progress: bool = True, quantizer: str = "auto",
                   report_backend: str = "ort", log: Callable[[str], None] = print) -> PrecisionResult:
    """``quantizer``: ``modelopt`` (NVIDIA ModelOpt's ONNX quantizer), ``ftrt`` (onnxruntime.quantization's
    static Q/DQ path) or ``auto`` (ModelOpt when installed). ftrt decides the ranges' method, the kept
    nodes and the report either way."""
    _check_output(model, out)
    _check_restorer(model)
    quantizer = modelopt.choose(quantizer, "--quantizer")
    if quantizer == "ftrt":
        require_range_cache()  # fail before any calibration work
    if quantizer == "modelopt" and method not in modelopt.METHODS:
        raise ValueError(f"--method {method}: ModelOpt calibrates with {' or '.join(modelopt.METHODS)} only; "
                         "use --quantizer ftrt for percentile")
    scorer = _scorer(threads)
    sel = select_images(images, num, seed, scorer)
    for line in sel.rejected:
        log(f"skipped: {line}")
    shape_list = [parse_shape(s) for s in shapes] if shapes else default_shapes(model)
    log(f"calibrating on {len(sel.used)} images x {len(shape_list)} shapes "
        f"({', '.join(f'{h}x{w}' for h, w in shape_list)}), method {method}")
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="ftrt-int8.") as tmp:
        named = named_copy(model, Path(tmp) / "fp32.onnx")
        reader = FundusCalibrationReader(sel.used, shape_list, progress=progress)
        # ftrt's own ranges feed its Q/DQ writer and the TensorRT cache; ModelOpt calibrates by itself.
        ranges = collect_ranges(named, reader, method) if quantizer == "ftrt" or cache else None
        proto = onnx.load(str(named))
        if quantizer == "modelopt":
            opset = modelopt.opset_of(proto)

            def quantize(dest: Path, kept: list[str]) -> onnx.ModelProto:
                return modelopt.quantize_int8(named, reader.samples(), dest, method, kept, opset)
            by = f"nvidia-modelopt {modelopt.version()}"
        else:
            assert ranges is not None  # collected above for the ftrt quantizer

            def quantize(dest: Path, kept: list[str]) -> onnx.ModelProto:
                return quantize_qdq(named, dest, ranges, kept)
            by = f"onnxruntime {_ort_version()}"
        if keep == "auto":
            h, w = shape_list[0]
            probe = [fundus_crop(read_image(p)[0], (h, w))[None] for p in sel.used[:2]]
            search = search_keep(named, quantize, default_keep(proto), psnr_score(named, probe, threads),
                                 target_db=min_psnr + 1.0, log=log)
            kept, search_history = search.keep, search.history
        else:
            names = {n.name for n in proto.graph.node}
            kept = [k for k in keep.split(",") if k]
            unknown = [k for k in kept if k not in names]
            if unknown:
                raise ValueError(f"--keep: no node named {', '.join(unknown)} in {model}")
            search_history = []
        out.parent.mkdir(parents=True, exist_ok=True)
        staged = Path(tmp) / "int8.onnx"
        q = quantize(staged, kept)
        meta = {**get_metadata(proto), "precision": "int8-qdq", "quantizer": by, "calibration": method,
                "calibration_images": str(len(sel.used)), "calibration_shapes": ",".join(f"{h}x{w}" for h, w in shape_list),
                "fp32_nodes": ",".join(kept)}
        set_metadata(q, meta)
        onnx.checker.check_model(q, full_check=True)
        onnx.save(q, str(staged))
        _copy(staged, out)
    details: dict[str, Any] = {"quantizer": by, "method": method, "calibration_images": len(sel.used),
                               "rejected": sel.rejected,
                               "shapes": [f"{h}x{w}" for h, w in shape_list], "fp32_nodes": kept,
                               "keep_search": search_history, "quantized_convs": _count_qdq_convs(q)}
    if cache:
        assert ranges is not None  # collected above whenever a cache is asked for
        details["cache"] = str(write_cache(ranges.amaxes(), cache, trt_version))
    return _finish(model, out, "int8", sel.rest[:eval_num] or sel.used[:eval_num], bool(sel.rest), scorer,
                   min_psnr, report_path, threads, progress, details, report_backend)


def convert_fp16_model(model: str | Path, out: str | Path, *, images: list[str] | None = None,
                       report_path: str | Path | None = None, min_psnr: float = MIN_PSNR["fp16"], eval_num: int = 8,
                       seed: int = 0, threads: int | None = None, progress: bool = True,
                       converter: str = "auto", report_backend: str = "ort") -> PrecisionResult:
    """``converter``: ``modelopt`` (ModelOpt AutoCast), ``ftrt`` (onnxconverter-common) or ``auto``
    (ModelOpt when installed); the same FP32 rules either way."""
    from ftrt.onnx.fp16 import convert_fp16

    _check_output(model, out)
    _check_restorer(model)
    converter = modelopt.choose(converter, "--converter")
    proto = onnx.load(str(model))
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="ftrt-fp16.") as tmp:
        # Without images, the report runs on the CC0 sample photograph (written into the temp folder).
        eval_images = select_images(images, eval_num, seed).used if images else [_sample_path(Path(tmp))]
        if converter == "modelopt":
            shape = default_shapes(model)[0]  # the working size when the model has one
            half = modelopt.autocast_fp16(model, fundus_crop(read_image(eval_images[0])[0], shape)[None])
            by = f"nvidia-modelopt {modelopt.version()} AutoCast"
        else:
            half = convert_fp16(proto)
            by = "onnxconverter-common"
        set_metadata(half, {**get_metadata(proto), "precision": "fp16-mixed", "converter": by})
        onnx.checker.check_model(half, full_check=True)
        staged = Path(tmp) / out.name
        onnx.save(half, str(staged))
        _copy(staged, out)
        return _finish(model, out, "fp16", eval_images, True, _scorer(threads), min_psnr, report_path, threads,
                       progress, {"converter": by,
                                  "fp32_ops": "LayerNorm reductions, output head (last conv, tanh, residual add)"},
                       report_backend)


def _finish(model: str | Path, out: Path, precision: str, eval_images: list[Path], held_out: bool, scorer: Any,
            min_psnr: float, report_path: str | Path | None, threads: int | None, progress: bool,
            details: dict[str, Any], report_backend: str = "ort") -> PrecisionResult:
    report = precision_report(model, out, eval_images, precision, scorer=scorer, threads=threads,
                              progress=progress, held_out=held_out, backend=report_backend)
    failures = check(report, min_psnr)
    files = write_report(report, report_path, {**details, "min_psnr_db": min_psnr}) if report_path else []
    return PrecisionResult(out, precision, report, failures, files, details)


def _ort_version() -> str:
    import onnxruntime

    return str(onnxruntime.__version__)


def _count_qdq_convs(proto: onnx.ModelProto) -> int:
    produced_by_dq = {o for n in proto.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return sum(1 for n in proto.graph.node if n.op_type == "Conv" and n.input and n.input[0] in produced_by_dq)


def _copy(src: Path, dst: Path) -> None:
    atomic_write(dst, lambda tmp: shutil.copyfile(src, tmp))


def _sample_path(folder: Path) -> Path:
    """The CC0 scikit-image fundus photograph as a file, when no evaluation images are given."""
    from ftrt.io import write_image
    from ftrt.samples import retina

    return write_image(folder / "retina.png", retina(768))


__all__ = ["PrecisionResult", "calibrate_int8", "convert_fp16_model", "default_shapes"]
