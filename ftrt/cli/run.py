"""``ftrt restore``, ``ftrt assess`` and ``ftrt info``: the torch-free runtime on photographs and models."""

from __future__ import annotations

import json
from typing import Any

import click

from ftrt.cli.common import (BACKEND_CHOICES, BITS_CHOICE, fail, open_or_fail, output_depth, run_batch, tile_side,
                             working_side)
from ftrt.cli.main import main
from ftrt.runtime.models import DEFAULT_MODEL


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False))
@click.option("--model", "model_ref", default=DEFAULT_MODEL, show_default=True, help="Shipped name or model file.")
@click.option("--backend", default="auto", show_default=True,
              type=click.Choice(BACKEND_CHOICES))
@click.option("--max-side", type=click.IntRange(min=0), callback=working_side,
              help="Working resolution (longest FOV side, px); default: the model's own; 0: native resolution.")
@click.option("--tile", type=click.IntRange(min=0), default=1024, show_default=True, callback=tile_side,
              help="Tile above this many pixels (0: never; else at least 128, twice the overlap).")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for the backend.")
@click.option("--strength", type=click.FloatRange(0, 4),
              help="How much of the restorer's correction to apply (0: none, 1: as trained, >1: more); default: "
                   "the model file's own, else 1.")
@click.option("--side-by-side", is_flag=True, help="Also write <stem>_compare.png (input | restored).")
@click.option("--cuda-graph", is_flag=True, help="trt backend: capture each input shape once as a CUDA graph.")
@click.option("--gate", is_flag=True, help="Score readability before and after restoration.")
@click.option("--gate-model", default="readability", show_default=True, help="Readability model for --gate.")
@click.option("--skip-invalid", is_flag=True, help="With --gate: leave images that are not fundus photographs untouched.")
@click.option("--dicom-out", type=click.Choice(["png", "dicom"]), default="png", show_default=True,
              help="DICOM inputs: write a PNG, or a derived DICOM instance (as `ftrt watch` does).")
@click.option("--bits", type=BITS_CHOICE, default="source", show_default=True,
              help="Bit depth of the written images: each input's own, or 8 or 16 (16-bit PNG keeps the detail a "
                   "restoration draws below one grey level of an 8-bit file, for software that reads it).")
@click.option("--steps", type=click.IntRange(1, 200),
              help="Diffusion pipeline (--model DIR): sampler steps (default: the pipeline's own).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Diffusion pipeline: noise seed (same seed, same output).")
@click.option("--refine", is_flag=True,
              help="Diffusion pipeline: start from its CNN restorer's output, part-way along (fewer steps).")
@click.option("--json", "as_json", is_flag=True, help="One JSON record per file.")
@click.option("--server", help="Send each photograph to fundus_restore on a Triton server (http://HOST:PORT or "
              "grpc://HOST:PORT; `ftrt serve`) instead of restoring here; the server's repository decides the "
              "model and the gate.")
@click.option("--server-wait", default=60.0, show_default=True, type=click.FloatRange(min=0),
              help="With --server: how long to wait (with back-off) for a server that is down or restarting.")
def restore(inputs: tuple[str, ...], out_dir: str, model_ref: str, backend: str, max_side: int | None, tile: int,
            threads: int | None, strength: float | None, side_by_side: bool, cuda_graph: bool, gate: bool,
            gate_model: str, skip_invalid: bool, dicom_out: str, bits: str, steps: int | None, seed: int,
            refine: bool, as_json: bool, server: str | None, server_wait: float) -> None:
    """Restore fundus photographs (files, folders, globs) with a trained model."""
    from ftrt.batch import gate_summary, restore_files
    from ftrt.runtime import open_pipeline

    if skip_invalid and not gate:
        fail("--skip-invalid needs --gate (the readability classifier decides what is a fundus photograph)")
    if bits != "source" and dicom_out == "dicom":
        fail("--bits sets image outputs; a derived DICOM instance takes its SOP class's depth")
    depth = output_depth(bits)
    if (steps is not None or refine) and not server:
        from ftrt.runtime.diffusion import is_pipeline_dir

        if not is_pipeline_dir(model_ref):
            fail("--steps and --refine set a diffusion pipeline's sampler: give its directory as --model")
    if server and strength is not None:
        fail("--strength sets a local pipeline; with --server the server's repository decides")
    if server:
        from ftrt.serving.client import RemoteRestorer

        try:
            remote = RemoteRestorer(server, wait=server_wait, log=None if as_json else lambda m: click.echo(m, err=True))
        except ValueError as exc:
            fail(str(exc))
        try:
            run_batch(lambda: restore_files(list(inputs), out_dir, None, side_by_side, progress=not as_json,
                                            dicom_out=dicom_out, process=remote, model_id=f"triton:{remote.model}",
                                            bits=depth),
                      as_json, summary=gate_summary,
                      show=lambda r: f"skipped: {r['input']}: {r['reason']}" if r["status"] == "skipped" else None)
        finally:
            remote.close()
        return
    opened = open_or_fail(lambda: open_pipeline(model_ref, backend, threads=threads, max_side=max_side, tile=tile,
                                         gate=gate, gate_model=gate_model, cuda_graph=cuda_graph,
                                         steps=steps, seed=seed, refine=refine, strength=strength))
    with opened:
        run_batch(lambda: restore_files(list(inputs), out_dir, opened, side_by_side, progress=not as_json,
                                        skip_invalid=skip_invalid, dicom_out=dicom_out, bits=depth),
                  as_json, summary=gate_summary if gate else None,
                  show=lambda r: f"skipped: {r['input']}: {r['reason']}" if r["status"] == "skipped" else None)


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("--model", "model_ref", default="readability", show_default=True, help="Shipped name or model file.")
@click.option("--backend", default="auto", show_default=True,
              type=click.Choice(BACKEND_CHOICES))
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for the backend.")
@click.option("--threshold", type=click.FloatRange(0.0, 1.0),
              help="Probability above which a label holds (default: the model's own, fitted per label).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def assess(inputs: tuple[str, ...], model_ref: str, backend: str, threads: int | None, threshold: float | None,
           as_json: bool) -> None:
    """Readability of fundus photographs: P(valid fundus), P(macula), P(optic disc), P(retina readable)."""
    from ftrt.batch import assess_files
    from ftrt.runtime import open_scorer

    scorer = open_or_fail(lambda: open_scorer(backend, model_ref, threads, threshold))

    def show(r: dict[str, Any]) -> str:
        probs = "  ".join(f"{k} {r[k]:.2f}" for k in scorer.labels)
        return f"{r['file']}: {probs}  -> {'readable' if r['readable'] else 'NOT readable'}"

    run_batch(lambda: assess_files(list(inputs), scorer, progress=not as_json), as_json, verb="assessed", show=show)


@main.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True)
def info(path: str, as_json: bool) -> None:
    """Describe a model file: ONNX (I/O, dynamic dims, opset, metadata) or a safetensors checkpoint."""
    from ftrt.info import describe, format_info

    try:
        rep = describe(path)
    except (ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    click.echo(json.dumps(rep, indent=2) if as_json else format_info(rep))
