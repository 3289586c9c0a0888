"""``ftrt export`` (PyTorch -> ONNX), ``ftrt build-engine`` (TensorRT) and ``ftrt profile`` (latency)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ftrt.cli.common import fail
from ftrt.cli.main import main
from ftrt.runtime.models import DEFAULT_MODEL


@main.command()
@click.option("--model", "model_ref", default=DEFAULT_MODEL, show_default=True,
              help="Shipped model name, a .safetensors file, or a training run folder.")
@click.option("-o", "--out", "out_path", required=True, type=click.Path(),
              help="OUT.onnx; for a latent-diffusion model (preset ldm) a directory of parts + pipeline.json.")
@click.option("--opset", default=17, show_default=True,
              help="17: TorchScript exporter, parses on TensorRT 8.6 (JetPack 6.0); 18+: torch.export.")
@click.option("--simplify/--no-simplify", default=True, show_default=True, help="onnxslim, when installed.")
@click.option("--fp16", is_flag=True, help="FP16 weights and activations, FP32 inputs/outputs.")
@click.option("--check/--no-check", default=True, show_default=True, help="ORT vs PyTorch parity on several shapes.")
@click.option("--refine-from", default=None,
              help="Latent diffusion: the CNN restorer (ONNX file or shipped name) `restore --refine` starts from; "
                   "default: the shipped default restorer.")
@click.option("--steps", type=click.IntRange(1, 200), default=8, show_default=True,
              help="Latent diffusion: the pipeline's default sampler steps.")
@click.option("--json", "as_json", is_flag=True)
def export(model_ref: str, out_path: str, opset: int, simplify: bool, fp16: bool, check: bool,
           refine_from: str | None, steps: int, as_json: bool) -> None:
    """Export a restorer (dynamic batch, height, width) or the readability classifier (dynamic batch) to ONNX;
    a latent-diffusion model to a pipeline directory (one ONNX per part, pipeline.json)."""
    from ftrt.export import export_onnx
    from ftrt.export.parity import ParityError
    from ftrt.models.pretrained import load_model

    try:
        model, meta = load_model(model_ref)
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    if meta["preset"] == "ldm":
        _export_pipeline(model, meta, out_path, opset, refine_from, steps, as_json)
        return
    try:
        # A classifier's decision thresholds travel with it, so every runtime decides alike.
        extra = {"thresholds": json.dumps(meta["thresholds"], sort_keys=True)} if "thresholds" in meta else None
        res = export_onnx(model, out_path, preset=meta["preset"], card_id=meta.get("card_id", ""), opset=opset,
                          simplify=simplify, check=check, fp16=fp16, work_side=meta.get("work_side"),
                          extra_metadata=extra)
    except ParityError as exc:
        fail(f"parity check failed, nothing written: {exc}")
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


def _export_pipeline(model: object, meta: dict, out_path: str, opset: int, refine_from: str | None, steps: int,
                     as_json: bool) -> None:
    from ftrt.export.parity import ParityError
    from ftrt.export.pipeline_export import export_pipeline
    from ftrt.runtime.models import resolve_model

    if Path(out_path).exists() and not Path(out_path).is_dir():
        fail(f"{out_path}: a latent-diffusion model exports to a directory, and this is a file")
    try:
        refine = resolve_model(refine_from or DEFAULT_MODEL, "onnx")
        desc = export_pipeline(model, out_path, meta=meta, opset=opset, steps=steps,  # type: ignore[arg-type]
                               refine_from=refine)
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    except ParityError as exc:
        fail(f"parity check failed: {exc}")
    if as_json:
        click.echo(json.dumps({"output": out_path, **{k: v for k, v in desc.items() if k != "paths"}}))
        return
    click.echo(f"wrote {out_path}/pipeline.json and {len(desc['parts'])} parts (+ restorer.onnx for --refine)")
    for name, part in desc["parts"].items():
        worst = max(r["max_abs_err"] for r in part["parity"])
        click.echo(f"  {part['file']}: parity max abs error {worst:.2e}")


@main.command()
@click.argument("models", nargs=-1, required=True)
@click.option("--backend", "backends", default="torch,ort", show_default=True,
              help="Comma-separated: torch, ort, openvino, openvino-bf16, ort-cuda, ort-trt, trt, torch-cuda, "
                   "torch-cuda-fp16; append +graph to trt or torch-cuda for CUDA graphs.")
@click.option("--shapes", default="256x256,512x512", show_default=True, help="Comma-separated HxW.")
@click.option("--batch", default=1, show_default=True, type=click.IntRange(min=1))
@click.option("--warmup", default=3, show_default=True, type=click.IntRange(min=0))
@click.option("--iters", default=20, show_default=True, type=click.IntRange(min=1))
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for every backend.")
@click.option("--baseline", default="torch", show_default=True, help="Backend the ratios are relative to.")
@click.option("--end-to-end", "e2e", multiple=True, help="Images to time the whole pipeline on, by stage.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Also write the table as CSV.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="Latency vs megapixels (matplotlib).")
def profile(models: tuple[str, ...], backends: str, shapes: str, batch: int, warmup: int, iters: int,
            threads: int | None, baseline: str, e2e: tuple[str, ...], as_json: bool, csv_path: str | None,
            plot_path: str | None) -> None:
    """Latency of MODEL(s) x backends x shapes (warm-up excluded, percentiles, ratio to a baseline)."""
    from ftrt.shapes import parse_shape
    from ftrt.io import write_text_atomic
    from ftrt.profile import end_to_end_all, run_profile, to_csv, to_markdown

    try:
        shape_list = [parse_shape(s) for s in shapes.split(",") if s]
    except ValueError as exc:
        fail(str(exc))
    backend_list = [b for b in backends.split(",") if b]
    report = run_profile(list(models), backend_list, shape_list, batch, warmup, iters, baseline, threads,
                         progress=None if as_json else lambda c: click.echo(
                             f"  {c.model} {c.backend} {c.shape}: "
                             + (f"{c.ms['median']:.1f} ms" if c.ms else str(c.error)), err=True))
    if e2e:
        report["end_to_end"] = end_to_end_all(list(models), backend_list, list(e2e), threads)
    if csv_path:
        write_text_atomic(csv_path, to_csv(report))
    if plot_path:
        try:
            from ftrt.profile import plot

            plot(report, plot_path)
        except ImportError:
            click.echo("warning: --plot needs matplotlib (pip install 'ftrt[plot]'); no plot written", err=True)
    click.echo(json.dumps(report, indent=2) if as_json else to_markdown(report))


@main.command("build-engine")
@click.argument("model", type=click.Path(exists=True))
@click.option("-o", "--out", "out_path", required=True, type=click.Path(),
              help="OUT.engine; for a diffusion pipeline directory, a directory of engines.")
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
    """Build a TensorRT engine (dynamic H x W profiles) with a sidecar that guards where it may run; for a
    diffusion pipeline directory, one engine per part (latent parts at the latent's size)."""
    from ftrt.engine import TensorRTUnavailable, parse_profile
    from ftrt.engine.build import BuildError, BuildOptions, build_engine
    from ftrt.runtime.diffusion import PipelineError, is_pipeline_dir

    try:
        opts = BuildOptions(profiles=[parse_profile(p) for p in profiles], workspace_gib=workspace,
                            timing_cache=Path(timing_cache) if timing_cache else None,
                            calib_cache=Path(calib_cache) if calib_cache else None,
                            builder_opt_level=builder_opt_level, dla_core=dla_core, fp16=fp16)
        if is_pipeline_dir(model):
            from ftrt.engine.pipeline import build_pipeline_engines

            desc = build_pipeline_engines(model, out_path, opts, log=lambda m: click.echo(m, err=True))
            click.echo(json.dumps(desc) if as_json else f"wrote {out_path}/pipeline.json and its engines")
            return
        if Path(model).is_dir():
            raise ValueError(f"{model}: a folder without pipeline.json; give an ONNX file or a pipeline directory")
        sidecar = build_engine(model, out_path, opts, log=lambda m: click.echo(m, err=True))
    except (TensorRTUnavailable, BuildError, PipelineError, ValueError) as exc:
        fail(str(exc))
    if as_json:
        click.echo(json.dumps(sidecar))
    else:
        click.echo(f"wrote {out_path} and {out_path}.json (TensorRT {sidecar['tensorrt_version']}, "
                   f"{sidecar['gpu']['name']})")
