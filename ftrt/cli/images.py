"""``ftrt degrade``, ``enhance``, ``sample`` and ``evaluate``: photographs in, photographs or metrics out."""

from __future__ import annotations

import json
import sys

import click

from ftrt.cli.common import DEGRADE_KINDS, fail, run_batch
from ftrt.cli.main import main


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

    run_batch(lambda: degrade_files(list(inputs), out_dir, kind=kind, seed=seed, syn_model=syn_model), as_json)


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False))
@click.option("--method", type=click.Choice(["clahe", "dcp"]), required=True, help="Classical anchor to apply.")
@click.option("--json", "as_json", is_flag=True)
def enhance(inputs: tuple[str, ...], out_dir: str, method: str, as_json: bool) -> None:
    """Classical enhancement anchors: CLAHE on LAB lightness, or dark-channel-prior dehazing."""
    from ftrt.batch import enhance_files

    run_batch(lambda: enhance_files(list(inputs), out_dir, method=method), as_json)


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
        fail(str(exc))
    click.echo(str(write_image(out_path, img)))


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
        fail(str(exc))
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
