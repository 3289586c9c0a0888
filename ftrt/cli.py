"""The ``ftrt`` command line: a thin layer over the Python API."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from ftrt import __version__


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
@click.option("--kind", type=click.Choice(["cofe", "cataract", "mixed"]), default="mixed", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON record per file.")
def degrade(inputs: tuple[str, ...], out_dir: str, seed: int, kind: str, as_json: bool) -> None:
    """Make degraded copies of good fundus photographs (Cofe-Net and/or cataract haze)."""
    from ftrt.batch import degrade_files

    _run_batch(lambda: degrade_files(list(inputs), out_dir, kind=kind, seed=seed), as_json)


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False))
@click.option("--method", type=click.Choice(["clahe", "dcp"]), required=True, help="Classical anchor to apply.")
@click.option("--json", "as_json", is_flag=True)
def enhance(inputs: tuple[str, ...], out_dir: str, method: str, as_json: bool) -> None:
    """Classical enhancement anchors: CLAHE on LAB lightness, or dark-channel-prior dehazing."""
    from ftrt.batch import enhance_files

    _run_batch(lambda: enhance_files(list(inputs), out_dir, method=method), as_json)


def _run_batch(job: Any, as_json: bool) -> None:
    from ftrt.io import InputError

    try:
        records = job()
    except InputError as exc:
        _fail(str(exc))
        return
    failed = [r for r in records if r["status"] == "error"]
    written = [r for r in records if r["status"] == "ok"]
    for r in records:
        if as_json:
            click.echo(json.dumps(r))
        elif r["status"] == "error":
            click.echo(f"error: {r['error']}", err=True)
    if not as_json:
        skipped = len(records) - len(failed) - len(written)
        click.echo(f"{len(written)} written, {len(failed)} failed" + (f", {skipped} skipped" if skipped else ""))
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
@click.option("--check/--no-check", default=True, show_default=True, help="ORT vs PyTorch parity on 3 shapes.")
@click.option("--json", "as_json", is_flag=True)
def export(model_ref: str, out_path: str, opset: int, simplify: bool, fp16: bool, check: bool, as_json: bool) -> None:
    """Export a restorer to ONNX with dynamic batch, height and width."""
    from ftrt.export import export_onnx
    from ftrt.export.parity import ParityError
    from ftrt.models.pretrained import load_model

    try:
        model, meta = load_model(model_ref)
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
        return
    try:
        res = export_onnx(model, out_path, preset=meta["preset"], card_id=meta.get("card_id", ""), opset=opset,
                          simplify=simplify, check=check, fp16=fp16, work_side=meta.get("work_side"))
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
              type=click.Choice(["auto", "ort", "ort-cuda", "ort-trt", "torch"]))
@click.option("--max-side", type=int,
              help="Working resolution (longest FOV side, px); default: the model's own; 0: native resolution.")
@click.option("--tile", type=int, default=1024, show_default=True, help="Tile above this many pixels (0: never).")
@click.option("--threads", type=int, help="CPU threads for the backend.")
@click.option("--side-by-side", is_flag=True, help="Also write <stem>_compare.png (input | restored).")
@click.option("--json", "as_json", is_flag=True, help="One JSON record per file.")
def restore(inputs: tuple[str, ...], out_dir: str, model_ref: str, backend: str, max_side: int | None, tile: int,
            threads: int | None, side_by_side: bool, as_json: bool) -> None:
    """Restore fundus photographs (files, folders, globs) with a trained model."""
    from ftrt.batch import restore_files
    from ftrt.runtime import BackendUnavailable, FundusPipeline, PipelineConfig, open_backend

    try:
        be = open_backend(backend, model_ref, threads=threads)
    except (BackendUnavailable, FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
        return
    pipeline = FundusPipeline(be, PipelineConfig(max_side=max_side, tile=tile or None))
    _run_batch(lambda: restore_files(list(inputs), out_dir, pipeline, side_by_side, progress=not as_json), as_json)


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


# ---------------------------------------------------------------- train
@main.group()
def train() -> None:
    """Train ftrt models (needs the ``train`` extra: torch)."""


@train.command("restorer")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), help="YAML config.")
@click.option("--data", multiple=True, help="Folder, file or glob of GOOD images (repeatable).")
@click.option("--model", help="Preset to train (res-s, res-m, res-l).")
@click.option("--out", help="Run folder (checkpoints, logs, final weights).")
@click.option("--steps", type=int)
@click.option("--batch-size", type=int)
@click.option("--crop", type=int)
@click.option("--lr", type=float)
@click.option("--kind", type=click.Choice(["cofe", "cataract", "mixed"]))
@click.option("--seed", type=int)
@click.option("--resume", is_flag=True, help="Continue from OUT/last.")
@click.option("--set", "sets", multiple=True, help="Any config field as key=value (repeatable).")
@click.option("--no-progress", is_flag=True)
def train_restorer(config_path: str | None, data: tuple[str, ...], resume: bool, sets: tuple[str, ...],
                   no_progress: bool, **opts: Any) -> None:
    """Train a restoration generator on pairs synthesised on the fly from good images."""
    from ftrt.training.config import RestorerConfig, load_config
    from ftrt.training.restorer import RestorerTrainer

    overrides = {k: v for k, v in opts.items() if v is not None}
    if data:
        overrides["data"] = list(data)
    try:
        cfg = load_config(RestorerConfig, config_path, overrides, list(sets))
    except ValueError as exc:
        _fail(str(exc))
        return
    if not cfg.data:
        _fail("no training data: give --data DIR (good fundus photographs)")
    try:
        trainer = RestorerTrainer(cfg, log=lambda m: click.echo(m, err=True))
    except ValueError as exc:
        _fail(str(exc))
        return
    if resume:
        last = Path(cfg.out) / "last"
        if not (last / "state.json").exists():
            _fail(f"--resume: no checkpoint in {last}")
        trainer.resume(last)
    result = trainer.run(progress=not no_progress)
    click.echo(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
