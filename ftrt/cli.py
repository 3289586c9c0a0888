"""The ``ftrt`` command line: a thin layer over the Python API."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable

import click

from ftrt import __version__


# ftrt.runtime.backends.BACKENDS, spelled out so `ftrt --help` does not import the runtime (OpenCV, ORT).
BACKEND_CHOICES = ["auto", "ort", "ort-cuda", "ort-trt", "trt", "torch", "torch-cuda", "torch-cuda-fp16", "openvino",
                   "openvino-bf16"]
# ftrt.degrade.KINDS, for the same reason.
DEGRADE_KINDS = ["cofe", "cataract", "mixed", "syn"]


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


@click.group()
@click.version_option(__version__, prog_name="ftrt")
def main() -> None:
    """Fundus-image restoration: train, degrade, evaluate, and deploy."""


# ---------------------------------------------------------------- degrade / enhance
@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--seed", default=0, show_default=True, help="Same seed and inputs give byte-identical outputs.")
@click.option("--kind", type=click.Choice(DEGRADE_KINDS), default="mixed", show_default=True,
              help="syn: the learnt Catintell-Syn cataract (needs torch).")
@click.option("--syn-model", default="syn", show_default=True,
              help="Catintell-Syn generator for --kind syn: shipped name or .safetensors from `ftrt train syn`.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON record per file.")
def degrade(inputs: tuple[str, ...], out_dir: str, seed: int, kind: str, syn_model: str, as_json: bool) -> None:
    """Make degraded copies of good fundus photographs (Cofe-Net, cataract haze, or learnt Syn cataract)."""
    from ftrt.batch import degrade_files

    _run_batch(lambda: degrade_files(list(inputs), out_dir, kind=kind, seed=seed, syn_model=syn_model), as_json)


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False))
@click.option("--method", type=click.Choice(["clahe", "dcp"]), required=True, help="Classical anchor to apply.")
@click.option("--json", "as_json", is_flag=True)
def enhance(inputs: tuple[str, ...], out_dir: str, method: str, as_json: bool) -> None:
    """Classical enhancement anchors: CLAHE on LAB lightness, or dark-channel-prior dehazing."""
    from ftrt.batch import enhance_files

    _run_batch(lambda: enhance_files(list(inputs), out_dir, method=method), as_json)


def _run_batch(job: Any, as_json: bool, verb: str = "written",
               show: Callable[[dict[str, Any]], str | None] | None = None,
               summary: Callable[[list[dict[str, Any]]], list[str]] | None = None) -> None:
    """Run a batch job, print each record (JSON lines, or ``show``'s line), a summary; exit 1 if any failed."""
    from ftrt.io import InputError

    try:
        records = job()
    except InputError as exc:
        _fail(str(exc))
        return
    failed = [r for r in records if r["status"] == "error"]
    done = [r for r in records if r["status"] == "ok"]
    for r in records:
        if as_json:
            click.echo(json.dumps(r))
        elif r["status"] == "error":
            click.echo(f"error: {r['error']}", err=True)
        elif show is not None and (line := show(r)):
            click.echo(line)
    if not as_json:
        skipped = len(records) - len(failed) - len(done)
        click.echo(f"{len(done)} {verb}, {len(failed)} failed" + (f", {skipped} skipped" if skipped else ""))
        for line in summary(records) if summary else []:
            click.echo(line)
    if failed:
        sys.exit(1)


@main.command()
@click.argument("out_path", type=click.Path(dir_okay=False))
@click.option("--size", default=512, show_default=True, help="Side in pixels (0: the original 1411).")
def sample(out_path: str, size: int) -> None:
    """Write the CC0 sample fundus photograph (from scikit-image) to OUT_PATH."""
    from ftrt.io import write_image
    from ftrt.samples import retina

    try:
        img = retina(size or None)
    except RuntimeError as exc:
        _fail(str(exc))
        return
    click.echo(str(write_image(out_path, img)))


# ---------------------------------------------------------------- evaluate
@main.command()
@click.option("--pred", required=True, type=click.Path(exists=True, file_okay=False), help="Restored images.")
@click.option("--ref", required=True, type=click.Path(exists=True, file_okay=False), help="Reference images.")
@click.option("--mask", type=click.Path(exists=True, file_okay=False), help="FOV masks (detected when absent).")
@click.option("--json", "as_json", is_flag=True)
def evaluate(pred: str, ref: str, mask: str | None, as_json: bool) -> None:
    """PSNR and SSIM inside the field of view, per image (paired by file stem) and mean."""
    from ftrt.evaluate import evaluate_dirs

    try:
        report = evaluate_dirs(pred, ref, mask)
    except ValueError as exc:
        _fail(str(exc))
        return
    if as_json:
        click.echo(json.dumps(report))
    else:
        for r in report["images"]:
            click.echo(f"{r['name']:<32} PSNR {r['psnr']:7.3f} dB  SSIM {r['ssim']:.4f}")
        m = report["mean"]
        click.echo(f"{'mean (' + str(len(report['images'])) + ' images)':<32} PSNR {m['psnr']:7.3f} dB  SSIM {m['ssim']:.4f}")
    if report.get("errors"):
        for e in report["errors"]:
            click.echo(f"error: {e}", err=True)
        sys.exit(1)


# ---------------------------------------------------------------- export / restore / info
@main.command()
@click.option("--model", "model_ref", default="res-s", show_default=True,
              help="Shipped model name, a .safetensors file, or a training run folder.")
@click.option("-o", "--out", "out_path", required=True, type=click.Path(dir_okay=False), help="OUT.onnx")
@click.option("--opset", default=17, show_default=True,
              help="17: TorchScript exporter, parses on TensorRT 8.6 (JetPack 6.0); 18+: torch.export.")
@click.option("--simplify/--no-simplify", default=True, show_default=True, help="onnxslim, when installed.")
@click.option("--fp16", is_flag=True, help="FP16 weights and activations, FP32 inputs/outputs.")
@click.option("--check/--no-check", default=True, show_default=True, help="ORT vs PyTorch parity on several shapes.")
@click.option("--json", "as_json", is_flag=True)
def export(model_ref: str, out_path: str, opset: int, simplify: bool, fp16: bool, check: bool, as_json: bool) -> None:
    """Export a restorer (dynamic batch, height, width) or the readability classifier (dynamic batch) to ONNX."""
    from ftrt.export import export_onnx
    from ftrt.export.parity import ParityError
    from ftrt.models.pretrained import load_model

    try:
        model, meta = load_model(model_ref)
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
        return
    try:
        # A classifier's decision thresholds travel with it, so every runtime decides alike.
        extra = {"thresholds": json.dumps(meta["thresholds"], sort_keys=True)} if "thresholds" in meta else None
        res = export_onnx(model, out_path, preset=meta["preset"], card_id=meta.get("card_id", ""), opset=opset,
                          simplify=simplify, check=check, fp16=fp16, work_side=meta.get("work_side"),
                          extra_metadata=extra)
    except ParityError as exc:
        _fail(f"parity check failed, nothing written: {exc}")
        return
    report = {"output": str(res.path), "opset": res.opset, "simplified": res.simplified, "parity": res.parity,
              "fp16_psnr_db": res.fp16_psnr_db, "metadata": res.metadata}
    if as_json:
        click.echo(json.dumps(report))
        return
    click.echo(f"wrote {res.path} (opset {res.opset}, {'simplified' if res.simplified else 'not simplified'})")
    for row in res.parity:
        click.echo(f"  parity {'x'.join(map(str, row['shape']))}: max abs error {row['max_abs_err']:.2e}")
    if res.fp16_psnr_db is not None:
        click.echo(f"  fp16 output vs fp32: PSNR {res.fp16_psnr_db:.1f} dB")


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False))
@click.option("--model", "model_ref", default="res-s", show_default=True, help="Shipped name or model file.")
@click.option("--backend", default="auto", show_default=True,
              type=click.Choice(BACKEND_CHOICES))
@click.option("--max-side", type=int,
              help="Working resolution (longest FOV side, px); default: the model's own; 0: native resolution.")
@click.option("--tile", type=int, default=1024, show_default=True, help="Tile above this many pixels (0: never).")
@click.option("--threads", type=int, help="CPU threads for the backend.")
@click.option("--side-by-side", is_flag=True, help="Also write <stem>_compare.png (input | restored).")
@click.option("--cuda-graph", is_flag=True, help="trt backend: capture each input shape once as a CUDA graph.")
@click.option("--gate", is_flag=True, help="Score readability before and after restoration.")
@click.option("--gate-model", default="readability", show_default=True, help="Readability model for --gate.")
@click.option("--skip-invalid", is_flag=True, help="With --gate: leave images that are not fundus photographs untouched.")
@click.option("--json", "as_json", is_flag=True, help="One JSON record per file.")
def restore(inputs: tuple[str, ...], out_dir: str, model_ref: str, backend: str, max_side: int | None, tile: int,
            threads: int | None, side_by_side: bool, cuda_graph: bool, gate: bool, gate_model: str,
            skip_invalid: bool, as_json: bool) -> None:
    """Restore fundus photographs (files, folders, globs) with a trained model."""
    from ftrt.batch import restore_files
    from ftrt.runtime import BackendUnavailable, FundusPipeline, PipelineConfig, open_backend

    if skip_invalid and not gate:
        _fail("--skip-invalid needs --gate (the readability classifier decides what is a fundus photograph)")
    from ftrt.engine.sidecar import EngineMismatch

    try:
        be = open_backend(backend, model_ref, threads=threads, cuda_graph=cuda_graph)
        scorer = _open_gate(backend, gate_model, threads) if gate else None
    except (BackendUnavailable, EngineMismatch, FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
        return
    _warn_slow_int8(be)
    pipeline = FundusPipeline(be, PipelineConfig(max_side=max_side, tile=tile or None))
    _run_batch(lambda: restore_files(list(inputs), out_dir, pipeline, side_by_side, progress=not as_json,
                                     gate=scorer, skip_invalid=skip_invalid),
               as_json, summary=_gate_summary if gate else None,
               show=lambda r: f"skipped: {r['input']}: {r['reason']}" if r["status"] == "skipped" else None)


def _warn_slow_int8(be: Any) -> None:
    """An INT8 Q/DQ file on ONNX Runtime's CPU provider runs slower than its FP32 original: say so once."""
    if be.info.name == "ort" and be.info.precision.startswith("int8"):
        click.echo("note: ONNX Runtime's CPU provider runs INT8 Q/DQ files slower than FP32 "
                   "(benchmarks/results/precision.md); --backend openvino runs them as INT8 on a CPU", err=True)


def _open_scorer(backend: str, model_ref: str, threads: int | None, threshold: float | None = None) -> Any:
    from ftrt.runtime import open_backend
    from ftrt.runtime.readability import ReadabilityScorer

    return ReadabilityScorer(open_backend(backend, model_ref, threads=threads), threshold=threshold)


def _open_gate(backend: str, model_ref: str, threads: int | None) -> Any:
    """The gate's classifier beside a restorer on ``backend``: with ``trt`` (the restorer's engine) it picks its
    own backend from its file, since the shipped classifier is an ONNX, not an engine."""
    return _open_scorer("auto" if backend == "trt" else backend, model_ref, threads)


def _gate_summary(records: list[dict[str, Any]]) -> list[str]:
    gated = [r for r in records if "readability_after" in r]
    before = [r for r in gated if not r["readability_before"]["readable"]]
    became = [r for r in gated if r.get("became_readable")]
    still = [r for r in before if not r["readability_after"]["readable"]]
    # Restoration can also hurt: say so as plainly as the improvements.
    lost = [r for r in gated if r["readability_before"]["readable"] and not r["readability_after"]["readable"]]
    lines = [f"readability: {len(before)} of {len(gated)} unreadable before restoration; "
             f"{len(became)} became readable, {len(still)} still unreadable, {len(lost)} readable before but not after"]
    lines += [f"  now readable: {r['input']}" for r in became]
    lines += [f"  still unreadable: {r['input']}" for r in still]
    lines += [f"  readable before, not after: {r['input']}" for r in lost]
    return lines


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("--model", "model_ref", default="readability", show_default=True, help="Shipped name or model file.")
@click.option("--backend", default="auto", show_default=True,
              type=click.Choice(BACKEND_CHOICES))
@click.option("--threads", type=int, help="CPU threads for the backend.")
@click.option("--threshold", type=float,
              help="Probability above which a label holds (default: the model's own, fitted per label).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def assess(inputs: tuple[str, ...], model_ref: str, backend: str, threads: int | None, threshold: float | None,
           as_json: bool) -> None:
    """Readability of fundus photographs: P(valid fundus), P(macula), P(optic disc), P(retina readable)."""
    from ftrt.batch import assess_files
    from ftrt.runtime import BackendUnavailable

    try:
        scorer = _open_scorer(backend, model_ref, threads, threshold)
    except (BackendUnavailable, FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
        return

    def show(r: dict[str, Any]) -> str:
        probs = "  ".join(f"{k} {r[k]:.2f}" for k in scorer.labels)
        return f"{r['file']}: {probs}  -> {'readable' if r['readable'] else 'NOT readable'}"

    _run_batch(lambda: assess_files(list(inputs), scorer, progress=not as_json), as_json, verb="assessed", show=show)


@main.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True)
def info(path: str, as_json: bool) -> None:
    """Describe a model file: ONNX (I/O, dynamic dims, opset, metadata) or a safetensors checkpoint."""
    from ftrt.info import describe, format_info

    try:
        rep = describe(path)
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
        return
    click.echo(json.dumps(rep, indent=2) if as_json else format_info(rep))


# ---------------------------------------------------------------- precision
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
@click.option("--eval-num", default=8, show_default=True, help="Held-out images for the report.")
@click.option("--seed", default=0, show_default=True)
@click.option("--threads", type=int)
@click.option("--json", "as_json", is_flag=True)
def calibrate(model: str, images: tuple[str, ...], out_path: str, method: str, num: int, shapes: tuple[str, ...],
              keep: str, cache_path: str | None, trt_version: str, quantizer: str, report_path: str | None,
              report_backend: str, min_psnr: float, eval_num: int, seed: int, threads: int | None,
              as_json: bool) -> None:
    """INT8: calibrate on real fundus photographs and write a Q/DQ ONNX (TensorRT 11, OpenVINO and ONNX Runtime
    run it)."""
    from ftrt.calibration import CalibrationDataError, calibrate_int8
    from ftrt.calibration.trt_cache import version_code
    from ftrt.io import InputError

    if Path(out_path).resolve() == Path(model).resolve():
        _fail("the output would overwrite the FP32 model; choose another -o")
    _check_report_backend(report_backend)
    try:
        res = calibrate_int8(model, list(images), out_path, method=method, num=num, shapes=list(shapes) or None,
                             keep=keep, cache=cache_path, trt_version=version_code(trt_version),
                             report_path=report_path, min_psnr=min_psnr, eval_num=eval_num, seed=seed,
                             threads=threads, progress=not as_json, quantizer=quantizer,
                             report_backend=report_backend, log=lambda m: click.echo(m, err=True))
    except (CalibrationDataError, InputError, ValueError) as exc:
        _fail(str(exc))
        return
    _precision_summary(res, as_json)


@main.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("--fp16", is_flag=True, required=True, help="Mixed FP16 (FP32 I/O, reductions and head).")
@click.option("-o", "--out", "out_path", required=True, type=click.Path(dir_okay=False))
@click.option("--images", multiple=True, help="Photographs for the report (default: the CC0 sample).")
@click.option("--converter", type=click.Choice(["auto", "ftrt", "modelopt"]), default="auto", show_default=True,
              help="NVIDIA ModelOpt AutoCast, onnxconverter-common (ftrt), or ModelOpt when installed (auto); "
              "the same FP32 rules either way.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False), help="Accuracy report (.json and .md).")
@_report_backend_option
@click.option("--min-psnr", default=45.0, show_default=True, help="Fail below this PSNR (dB) vs FP32 output.")
@click.option("--threads", type=int)
@click.option("--json", "as_json", is_flag=True)
def convert(model: str, fp16: bool, out_path: str, images: tuple[str, ...], converter: str,
            report_path: str | None, report_backend: str, min_psnr: float, threads: int | None,
            as_json: bool) -> None:
    """Convert an FP32 restorer ONNX to mixed FP16, with an accuracy report (no PyTorch needed)."""
    from ftrt.calibration import CalibrationDataError, convert_fp16_model
    from ftrt.io import InputError

    if Path(out_path).resolve() == Path(model).resolve():
        _fail("the output would overwrite the FP32 model; choose another -o")
    _check_report_backend(report_backend)
    try:
        res = convert_fp16_model(model, out_path, images=list(images) or None, report_path=report_path,
                                 min_psnr=min_psnr, threads=threads, progress=not as_json, converter=converter,
                                 report_backend=report_backend)
    except (CalibrationDataError, InputError, ValueError) as exc:
        _fail(str(exc))
        return
    _precision_summary(res, as_json)


def _check_report_backend(name: str) -> None:
    """Before any work: a report backend that is not installed would fail only after the file is written."""
    if name == "openvino":
        from ftrt.runtime.backends import BackendUnavailable
        from ftrt.runtime.backends.openvino_backend import import_openvino

        try:
            import_openvino("--report-backend openvino")
        except BackendUnavailable as exc:
            _fail(str(exc))


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


# ---------------------------------------------------------------- watch
@main.command()
@click.argument("in_dir", required=False, type=click.Path(file_okay=False))
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False), help="Output folder (holds the journal).")
@click.option("--model", "model_ref", default="res-s", show_default=True)
@click.option("--backend", default="auto", show_default=True,
              type=click.Choice(BACKEND_CHOICES))
@click.option("--max-side", type=int, help="Working resolution (default: the model's own).")
@click.option("--threads", type=int)
@click.option("--gate", is_flag=True, help="Record readability before and after in each sidecar.")
@click.option("--poll", default=2.0, show_default=True, help="Seconds between scans; a file must be unchanged "
              "over one interval to be taken.")
@click.option("--once", is_flag=True, help="Process what is there (waiting for files still being written), exit.")
@click.option("--status", "status_dir", type=click.Path(file_okay=False), help="Print a journal's counts and "
              "last errors, and exit.")
@click.option("--dicom-out", type=click.Choice(["dicom", "png"]), default="dicom", show_default=True,
              help="DICOM inputs: write a derived DICOM instance, or a PNG.")
@click.option("--side-by-side", is_flag=True, help="Also write <name>.compare.png (input | restored).")
def watch(in_dir: str | None, out_dir: str | None, model_ref: str, backend: str, max_side: int | None,
          threads: int | None, gate: bool, poll: float, once: bool, status_dir: str | None, dicom_out: str,
          side_by_side: bool) -> None:
    """Restore each photograph as it lands in IN_DIR, exactly once, surviving restarts (journal in OUT)."""
    from ftrt.batch import restore_one
    from ftrt.runtime import BackendUnavailable, FundusPipeline, PipelineConfig, open_backend
    from ftrt.watch import Watcher, status

    if status_dir:
        try:
            click.echo(json.dumps(status(status_dir), indent=2))
        except ValueError as exc:
            _fail(str(exc))
        return
    if not in_dir or not out_dir:
        _fail("give IN_DIR and -o OUT_DIR (or --status OUT_DIR)")
        return
    try:
        be = open_backend(backend, model_ref, threads=threads)
        scorer = _open_gate(backend, "readability", threads) if gate else None
    except (BackendUnavailable, FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
        return
    _warn_slow_int8(be)
    pipeline = FundusPipeline(be, PipelineConfig(max_side=max_side))
    model_info = {"model": be.info.metadata.get("card_id") or model_ref, "backend": be.info.name,
                  "precision": be.info.precision}

    def process(img: Any) -> tuple[Any, Any, dict[str, Any]]:
        res, extra = restore_one(img, pipeline, scorer)
        extra["ms"] = {k: round(v, 1) for k, v in extra["ms"].items()}
        return res.image, res.mask, {**model_info, **extra}

    try:
        w = Watcher(in_dir, out_dir, process, poll=poll, log=lambda m: click.echo(m, err=True),
                    model_id=str(model_info["model"]), dicom_out=dicom_out, side_by_side=side_by_side)
    except ValueError as exc:
        _fail(str(exc))
        return
    stats = w.run(once=once)
    click.echo(f"{stats.done} restored, {stats.failed} failed")


# ---------------------------------------------------------------- profile
@main.command()
@click.argument("models", nargs=-1, required=True)
@click.option("--backend", "backends", default="torch,ort", show_default=True,
              help="Comma-separated: torch, ort, openvino, openvino-bf16, ort-cuda, ort-trt, trt, torch-cuda, "
                   "torch-cuda-fp16; append +graph to trt or torch-cuda for CUDA graphs.")
@click.option("--shapes", default="256x256,512x512", show_default=True, help="Comma-separated HxW.")
@click.option("--batch", default=1, show_default=True)
@click.option("--warmup", default=3, show_default=True)
@click.option("--iters", default=20, show_default=True)
@click.option("--threads", type=int, help="CPU threads for every backend.")
@click.option("--baseline", default="torch", show_default=True, help="Backend the ratios are relative to.")
@click.option("--end-to-end", "e2e", multiple=True, help="Images to time the whole pipeline on, by stage.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Also write the table as CSV.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="Latency vs megapixels (matplotlib).")
def profile(models: tuple[str, ...], backends: str, shapes: str, batch: int, warmup: int, iters: int,
            threads: int | None, baseline: str, e2e: tuple[str, ...], as_json: bool, csv_path: str | None,
            plot_path: str | None) -> None:
    """Latency of MODEL(s) x backends x shapes (warm-up excluded, percentiles, ratio to a baseline)."""
    from ftrt.calibration.data import parse_shape
    from ftrt.io import write_text_atomic
    from ftrt.profile import end_to_end, run_profile, to_csv, to_markdown

    try:
        shape_list = [parse_shape(s) for s in shapes.split(",") if s]
    except ValueError as exc:
        _fail(str(exc))
        return
    backend_list = [b for b in backends.split(",") if b]
    report = run_profile(list(models), backend_list, shape_list, batch, warmup, iters, baseline, threads,
                         progress=None if as_json else lambda c: click.echo(
                             f"  {c.model} {c.backend} {c.shape}: "
                             + (f"{c.ms['median']:.1f} ms" if c.ms else str(c.error)), err=True))
    if e2e:
        report["end_to_end"] = []
        for m in models:
            for b in backend_list:
                try:
                    report["end_to_end"].append(end_to_end(m, b, list(e2e), threads))
                except Exception as exc:  # noqa: BLE001 - one unavailable backend must not hide the others
                    report["end_to_end"].append({"model": m, "backend": b, "error": str(exc).splitlines()[0]})
    if csv_path:
        write_text_atomic(csv_path, to_csv(report))
    if plot_path:
        try:
            from ftrt.profile import plot

            plot(report, plot_path)
        except ImportError:
            click.echo("warning: --plot needs matplotlib (pip install 'ftrt[plot]'); no plot written", err=True)
    click.echo(json.dumps(report, indent=2) if as_json else to_markdown(report))


# ---------------------------------------------------------------- engines
@main.command("build-engine")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--out", "out_path", required=True, type=click.Path(dir_okay=False), help="OUT.engine")
@click.option("--profile", "profiles", multiple=True,
              help="MIN:OPT:MAX as HxW or NxHxW, e.g. 512x512:1024x1024:1536x1536 (repeatable); default: the "
                   "model's working size plus a generic camera-size profile.")
@click.option("--workspace", type=float, help="Workspace memory pool limit in GiB (about 1 on Jetson).")
@click.option("--timing-cache", type=click.Path(dir_okay=False), help="Loaded if present, saved after the build.")
@click.option("--calib-cache", type=click.Path(exists=True, dir_okay=False),
              help="INT8 calibration cache from `ftrt calibrate --cache` (TensorRT 8.6/10, FP32 ONNX).")
@click.option("--builder-opt-level", type=click.IntRange(0, 5), help="0-5; 3 is TensorRT's default, 1 builds fast.")
@click.option("--dla-core", type=int, help="Build for this DLA core (Jetson), GPU fallback on.")
@click.option("--fp16", is_flag=True, help="Legacy FP16 builder flag (TensorRT 8.6/10, FP32 ONNX).")
@click.option("--json", "as_json", is_flag=True)
def build_engine_cmd(model: str, out_path: str, profiles: tuple[str, ...], workspace: float | None,
                     timing_cache: str | None, calib_cache: str | None, builder_opt_level: int | None,
                     dla_core: int | None, fp16: bool, as_json: bool) -> None:
    """Build a TensorRT engine (dynamic H x W profiles) with a sidecar that guards where it may run."""
    from ftrt.engine import TensorRTUnavailable, parse_profile
    from ftrt.engine.build import BuildError, BuildOptions, build_engine

    try:
        opts = BuildOptions(profiles=[parse_profile(p) for p in profiles], workspace_gib=workspace,
                            timing_cache=Path(timing_cache) if timing_cache else None,
                            calib_cache=Path(calib_cache) if calib_cache else None,
                            builder_opt_level=builder_opt_level, dla_core=dla_core, fp16=fp16)
        sidecar = build_engine(model, out_path, opts, log=lambda m: click.echo(m, err=True))
    except (TensorRTUnavailable, BuildError, ValueError) as exc:
        _fail(str(exc))
        return
    if as_json:
        click.echo(json.dumps(sidecar))
    else:
        click.echo(f"wrote {out_path} and {out_path}.json (TensorRT {sidecar['tensorrt_version']}, "
                   f"{sidecar['gpu']['name']})")


# ---------------------------------------------------------------- train
@main.group()
def train() -> None:
    """Train ftrt models (needs the ``train`` extra: torch)."""


def _generator_run_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The options ``train restorer`` and ``train syn`` share: config file, run folder, schedule, resume."""
    for option in reversed([
        click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), help="YAML config."),
        click.option("--out", help="Run folder (checkpoints, logs, final weights)."),
        click.option("--steps", type=int),
        click.option("--batch-size", type=int),
        click.option("--crop", type=int),
        click.option("--lr", type=float),
        click.option("--seed", type=int),
        click.option("--resume", is_flag=True, help="Continue from OUT/last."),
        click.option("--set", "sets", multiple=True, help="Any config field as key=value (repeatable)."),
        click.option("--no-progress", is_flag=True),
    ]):
        f = option(f)
    return f


@train.command("restorer")
@click.option("--data", multiple=True, help="Folder, file or glob of GOOD images (repeatable).")
@click.option("--model", help="Preset to train (res-s, res-m, res-l).")
@click.option("--kind", type=click.Choice(DEGRADE_KINDS), help="Degradation of the pairs (syn: --syn-model).")
@click.option("--syn-model", help="Catintell-Syn generator for Syn pairs (default: the shipped syn).")
@click.option("--syn-fraction", type=float, help="Share of Syn pairs mixed into --kind's classical pairs.")
@click.option("--real-lq", multiple=True,
              help="Real low-quality photographs (repeatable): adds the mean-teacher consistency loss.")
@click.option("--init", help="Start from these weights (shipped name or .safetensors).")
@_generator_run_options
def train_restorer(config_path: str | None, data: tuple[str, ...], real_lq: tuple[str, ...], resume: bool,
                   sets: tuple[str, ...], no_progress: bool, **opts: Any) -> None:
    """Train a restoration generator on pairs synthesised on the fly from good images."""
    from ftrt.training.config import RestorerConfig
    from ftrt.training.restorer import RestorerTrainer

    lists = {"data": list(data), "real_lq": list(real_lq)}
    cfg = _train_config(RestorerConfig, config_path, opts, lists, sets)
    if not cfg.data:
        _fail("no training data: give --data DIR (good fundus photographs)")
    _train(lambda: RestorerTrainer(cfg, log=lambda m: click.echo(m, err=True)), cfg, resume, no_progress)


@train.command("colour-head")
@click.option("--init", default="res-s", show_default=True,
              help="Restorer with an affine head (shipped name, .safetensors or run folder).")
@click.option("--data", multiple=True, required=True,
              help="GOOD photographs from the camera to calibrate for (repeatable).")
@click.option("--out", default="runs/colour-head", show_default=True, help="Run folder.")
@click.option("--kind", type=click.Choice(DEGRADE_KINDS[:3]), default="mixed", show_default=True)
@click.option("--samples", type=int, default=24, show_default=True, help="Degraded versions of each photograph.")
@click.option("--steps", type=int, default=400, show_default=True)
@click.option("--lr", type=float, default=3e-4, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True,
              help="Degradations and the validation hold-out (use the restorer run's seed to hold out the same).")
@click.option("--no-progress", is_flag=True)
def train_colour_head(init: str, data: tuple[str, ...], out: str, kind: str, samples: int, steps: int, lr: float,
                      seed: int, no_progress: bool) -> None:
    """Fit the global colour head to one camera: whole photographs, network frozen (minutes on a CPU)."""
    from ftrt.training.colour_head import ColourHeadConfig, fit_colour_head

    cfg = ColourHeadConfig(init=init, data=list(data), out=out, kind=kind, samples=samples, steps=steps, lr=lr,
                           seed=seed)
    try:
        result = fit_colour_head(cfg, progress=not no_progress, log=lambda m: click.echo(m, err=True))
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
        return
    click.echo(json.dumps(result, indent=2))


@train.command("syn")
@click.option("--good", multiple=True, help="Folder, file or glob of GOOD photographs (repeatable).")
@click.option("--cataract", multiple=True, help="Folder, file or glob of REAL cataract photographs (repeatable).")
@_generator_run_options
def train_syn(config_path: str | None, good: tuple[str, ...], cataract: tuple[str, ...], resume: bool,
              sets: tuple[str, ...], no_progress: bool, **opts: Any) -> None:
    """Train the Catintell-Syn generator (good -> cataract-like) against unpaired real cataract photographs."""
    from ftrt.training.config import SynConfig
    from ftrt.training.syn import SynTrainer

    cfg = _train_config(SynConfig, config_path, opts, {"good": list(good), "cataract": list(cataract)}, sets)
    if not cfg.good or not cfg.cataract:
        _fail("Syn training needs --good DIR and --cataract DIR")
    _train(lambda: SynTrainer(cfg, log=lambda m: click.echo(m, err=True)), cfg, resume, no_progress)


def _train_config(cls: type, config_path: str | None, opts: dict[str, Any], lists: dict[str, list[str]],
                  sets: tuple[str, ...]) -> Any:
    from ftrt.training.config import load_config

    overrides = {k: v for k, v in opts.items() if v is not None}
    overrides.update({k: v for k, v in lists.items() if v})
    try:
        return load_config(cls, config_path, overrides, list(sets))
    except ValueError as exc:
        _fail(str(exc))


def _train(make: Callable[[], Any], cfg: Any, resume: bool, no_progress: bool) -> None:
    try:
        trainer = make()
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
        return
    if resume:
        last = Path(cfg.out) / "last"
        if not (last / "state.json").exists():
            _fail(f"--resume: no checkpoint in {last}")
        trainer.resume(last)
    click.echo(json.dumps(trainer.run(progress=not no_progress), indent=2))


@train.command("readability")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), help="YAML config.")
@click.option("--data-root", help="The shared data folder (drimdb/, drive/, odir_eyedisease/, csdi/).")
@click.option("--model", help="readability (edge backbone) or readability-inception.")
@click.option("--out", help="Run folder.")
@click.option("--steps", type=int)
@click.option("--batch-size", type=int)
@click.option("--lr", type=float)
@click.option("--seed", type=int)
@click.option("--set", "sets", multiple=True, help="Any config field as key=value (repeatable).")
@click.option("--no-progress", is_flag=True)
def train_readability(config_path: str | None, sets: tuple[str, ...], no_progress: bool, **opts: Any) -> None:
    """Train the readability classifier; prints the held-out report (also in OUT/card.json)."""
    from ftrt.training.config import ReadabilityConfig, load_config
    from ftrt.training.readability import ReadabilityTrainer

    try:
        cfg = load_config(ReadabilityConfig, config_path, {k: v for k, v in opts.items() if v is not None},
                          list(sets))
        trainer = ReadabilityTrainer(cfg, log=lambda m: click.echo(m, err=True))
    except ValueError as exc:
        _fail(str(exc))
        return
    click.echo(json.dumps(trainer.run(progress=not no_progress), indent=2))


if __name__ == "__main__":
    main()
