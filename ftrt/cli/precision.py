"""``ftrt calibrate`` (INT8 Q/DQ) and ``ftrt convert --fp16``, each with its accuracy report."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from ftrt.cli.common import fail
from ftrt.cli.main import main


# `ftrt calibrate` and `ftrt convert` both report on a chosen runtime.
_report_backend_option = click.option(
    "--report-backend", type=click.Choice(["ort", "openvino"]), default="ort", show_default=True,
    help="Runtime that runs the low-precision file for the report: ONNX Runtime, or OpenVINO (INT8 "
    "kernels on a CPU; the fast way to run a Q/DQ file without a GPU).")


@main.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("--images", multiple=True, required=True, help="Folder, file or glob of fundus photographs (repeatable).")
@click.option("-o", "--out", "out_path", required=True, type=click.Path(dir_okay=False), help="OUT.int8.onnx")
@click.option("--method", type=click.Choice(["minmax", "entropy", "percentile"]), default="minmax", show_default=True,
              help="Activation range estimator (MinMax often beats entropy for image-to-image models).")
@click.option("--num", default=32, show_default=True, help="Calibration images (deterministic selection).")
@click.option("--shape", "shapes", multiple=True, help="HxW the engine will run (repeatable); default: the model's "
              "working size and 512x512.")
@click.option("--keep", default="auto", show_default=True,
              help="'auto' (first/last conv, then by measured sensitivity) or NODE,NODE,... kept FP32.")
@click.option("--cache", "cache_path", type=click.Path(dir_okay=False),
              help="Also write a TensorRT 8.6/10 calibration cache (for build-engine --calib-cache).")
@click.option("--trt-version", default="8.6.1", show_default=True, help="TensorRT version named in the cache header.")
@click.option("--quantizer", type=click.Choice(["auto", "ftrt", "modelopt"]), default="auto", show_default=True,
              help="Who writes the Q/DQ graph: NVIDIA ModelOpt, onnxruntime.quantization (ftrt), or ModelOpt "
              "when installed (auto).")
@click.option("--report", "report_path", type=click.Path(dir_okay=False), help="Accuracy report (.json and .md).")
@_report_backend_option
@click.option("--min-psnr", default=35.0, show_default=True, help="Fail below this PSNR (dB) vs FP32 output.")
@click.option("--eval-num", default=8, show_default=True, type=click.IntRange(min=1), help="Held-out images for the report.")
@click.option("--seed", default=0, show_default=True)
@click.option("--threads", type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True)
def calibrate(model: str, images: tuple[str, ...], out_path: str, method: str, num: int, shapes: tuple[str, ...],
              keep: str, cache_path: str | None, trt_version: str, quantizer: str, report_path: str | None,
              report_backend: str, min_psnr: float, eval_num: int, seed: int, threads: int | None,
              as_json: bool) -> None:
    """INT8: calibrate on real fundus photographs and write a Q/DQ ONNX (TensorRT 11, OpenVINO and ONNX Runtime
    run it)."""
    from ftrt.precision import CalibrationDataError, calibrate_int8
    from ftrt.engine.calib_cache import version_code
    from ftrt.io import InputError

    _check_report_backend(report_backend)
    try:
        res = calibrate_int8(model, list(images), out_path, method=method, num=num, shapes=list(shapes) or None,
                             keep=keep, cache=cache_path, trt_version=version_code(trt_version),
                             report_path=report_path, min_psnr=min_psnr, eval_num=eval_num, seed=seed,
                             threads=threads, progress=not as_json, quantizer=quantizer,
                             report_backend=report_backend, log=lambda m: click.echo(m, err=True))
    except (CalibrationDataError, InputError, ValueError) as exc:
        fail(str(exc))
    _precision_summary(res, as_json)


@main.command()
@click.argument("model", type=click.Path(exists=True))
@click.option("--fp16", is_flag=True, required=True, help="Mixed FP16 (FP32 I/O, reductions and head).")
@click.option("-o", "--out", "out_path", required=True, type=click.Path(),
              help="OUT.onnx; for a diffusion pipeline directory, another directory.")
@click.option("--images", multiple=True, help="Photographs for the report (default: the CC0 sample).")
@click.option("--converter", type=click.Choice(["auto", "ftrt", "modelopt"]), default="auto", show_default=True,
              help="NVIDIA ModelOpt AutoCast, onnxconverter-common (ftrt), or ModelOpt when installed (auto); "
              "the same FP32 rules either way.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False), help="Accuracy report (.json and .md).")
@_report_backend_option
@click.option("--min-psnr", default=45.0, show_default=True, help="Fail below this PSNR (dB) vs FP32 output.")
@click.option("--threads", type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True)
def convert(model: str, fp16: bool, out_path: str, images: tuple[str, ...], converter: str,
            report_path: str | None, report_backend: str, min_psnr: float, threads: int | None,
            as_json: bool) -> None:
    """Convert an FP32 restorer ONNX (or each part of a diffusion pipeline directory) to mixed FP16, with an
    accuracy report (no PyTorch needed)."""
    from ftrt.precision import CalibrationDataError, convert_fp16_model
    from ftrt.io import InputError
    from ftrt.runtime.diffusion import is_pipeline_dir

    if is_pipeline_dir(model):
        _convert_pipeline(model, out_path, images, min_psnr, threads, as_json)
        return

    _check_report_backend(report_backend)
    try:
        res = convert_fp16_model(model, out_path, images=list(images) or None, report_path=report_path,
                                 min_psnr=min_psnr, threads=threads, progress=not as_json, converter=converter,
                                 report_backend=report_backend)
    except (CalibrationDataError, InputError, ValueError) as exc:
        fail(str(exc))
    _precision_summary(res, as_json)


def _convert_pipeline(model: str, out_path: str, images: tuple[str, ...], min_psnr: float, threads: int | None,
                      as_json: bool) -> None:
    import numpy as np

    from ftrt.io import InputError, collect_inputs, read_image
    from ftrt.onnx.fp16 import _sample_input
    from ftrt.precision.pipeline_fp16 import convert_pipeline_fp16

    try:
        imgs = [read_image(p)[0] for p in collect_inputs(list(images))] if images else \
            [np.ascontiguousarray(_sample_input()[0].transpose(1, 2, 0))]
        report = convert_pipeline_fp16(model, out_path, imgs, min_psnr=min(min_psnr, 40.0), threads=threads,
                                       log=(lambda m: None) if as_json else (lambda m: click.echo(m, err=True)))
    except (InputError, ValueError) as exc:
        fail(str(exc))
    if as_json:
        click.echo(json.dumps({"output": out_path, **report}))
        return
    click.echo(f"wrote {out_path}: FP16 pipeline {report['pipeline_psnr_db']:.1f} dB vs FP32 on {report['images']} "
               f"image(s); kept FP32: {', '.join(report['kept_fp32']) or 'none'}")


def _check_report_backend(name: str) -> None:
    """Before any work: a report backend that is not installed would fail only after the file is written."""
    if name == "openvino":
        from ftrt.runtime.backends import BackendUnavailable
        from ftrt.runtime.backends.openvino_backend import import_openvino

        try:
            import_openvino("--report-backend openvino")
        except BackendUnavailable as exc:
            fail(str(exc))


def _precision_summary(res: Any, as_json: bool) -> None:
    s = res.report["summary"]
    if as_json:
        click.echo(json.dumps({"output": str(res.output), "precision": res.precision,
                               "report_backend": res.report["backend"], "summary": s,
                               "failures": res.failures, "report_files": [str(p) for p in res.report_files],
                               "details": res.details}))
    else:
        by = res.details.get("quantizer") or res.details.get("converter")
        click.echo(f"wrote {res.output} ({res.precision}" + (f", by {by})" if by else ")"))
        on = "" if res.report["backend"] == "ort" else f" (run on {res.report['backend']})"
        images = f"{s['images']} {'held-out' if s['held_out'] else 'calibration'} images"
        click.echo(f"  vs FP32 output{on}: PSNR mean {s['psnr_vs_fp32_mean']:.2f} dB, worst "
                   f"{s['psnr_vs_fp32_worst']:.2f} dB on {images}")
        click.echo(f"  vs clean: FP32 {s['psnr_ref_fp32_mean']:.2f} dB, {res.precision.upper()} "
                   f"{s['psnr_ref_low_mean']:.2f} dB")
        if "readability_agreement" in s:
            click.echo(f"  readability decisions agree: {s['readability_agreement']:.0%}")
        for p in res.report_files:
            click.echo(f"  report: {p}")
    for f in res.failures:
        click.echo(f"error: {f}", err=True)
    if res.failures:
        sys.exit(1)
