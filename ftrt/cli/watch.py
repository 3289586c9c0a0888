"""``ftrt watch``: the camera-folder service over the per-file restoration job."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ftrt.cli.common import BACKEND_CHOICES, BITS_CHOICE, echo_err, fail, open_or_fail, output_depth, working_side
from ftrt.cli.main import main
from ftrt.runtime.models import DEFAULT_MODEL


@main.command()
@click.argument("in_dir", required=False, type=click.Path(file_okay=False))
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False), help="Output folder (holds the journal).")
@click.option("--model", "model_ref", default=DEFAULT_MODEL, show_default=True)
@click.option("--backend", default="auto", show_default=True,
              type=click.Choice(BACKEND_CHOICES))
@click.option("--max-side", type=click.IntRange(min=0), callback=working_side,
              help="Working resolution (default: the model's own).")
@click.option("--threads", type=click.IntRange(min=1))
@click.option("--strength", type=click.FloatRange(0, 4),
              help="How much of the restorer's correction to apply (0: none, 1: as trained, >1: more); default: "
                   "the model file's own, else 1.")
@click.option("--gate", is_flag=True, help="Record readability before and after in each sidecar.")
@click.option("--poll", default=2.0, show_default=True, type=click.FloatRange(min=0.05),
              help="Seconds between scans; a file must be unchanged over one interval to be taken.")
@click.option("--once", is_flag=True, help="Process what is there (waiting for files still being written), exit.")
@click.option("--status", "status_dir", type=click.Path(file_okay=False), help="Print a journal's counts and "
              "last errors, and exit.")
@click.option("--dicom-out", type=click.Choice(["dicom", "png"]), default="dicom", show_default=True,
              help="DICOM inputs: write a derived DICOM instance, or a PNG.")
@click.option("--bits", type=BITS_CHOICE, default="source", show_default=True,
              help="Bit depth of the written images: each capture's own, or 8 or 16 (as `ftrt restore --bits`); "
                   "a derived DICOM instance keeps its SOP class's depth.")
@click.option("--side-by-side", is_flag=True, help="Also write <name>.compare.png (input | restored).")
@click.option("--server", help="Restore on a Triton server (http://HOST:PORT or grpc://HOST:PORT; `ftrt serve`); "
              "while it is down, captures wait in the journal and are retried.")
@click.option("--server-wait", default=30.0, show_default=True, type=click.FloatRange(min=0),
              help="With --server: seconds to wait for it per file before the file is retried later.")
def watch(in_dir: str | None, out_dir: str | None, model_ref: str, backend: str, max_side: int | None,
          threads: int | None, strength: float | None, gate: bool, poll: float, once: bool, status_dir: str | None,
          dicom_out: str, bits: str, side_by_side: bool, server: str | None, server_wait: float) -> None:
    """Restore each photograph as it lands in IN_DIR, exactly once, surviving restarts (journal in OUT)."""
    from ftrt.jobs import RestoreJob
    from ftrt.runtime import open_pipeline
    from ftrt.watch import Watcher, status, watch_names

    if status_dir:
        try:
            click.echo(json.dumps(status(status_dir), indent=2))
        except ValueError as exc:
            fail(str(exc))
        return
    if not in_dir or not out_dir:
        fail("give IN_DIR and -o OUT_DIR (or --status OUT_DIR)")
    # Unlike `ftrt restore`, --bits is not refused with derived DICOM (watch's default): a camera folder gets
    # both kinds of capture, and the setting is for the image files among them.
    depth = output_depth(bits)
    if server and strength is not None:
        fail("--strength sets a local pipeline; with --server the server's repository decides")
    if server:
        from ftrt.serving.client import RemoteRestorer

        try:
            remote = RemoteRestorer(server, wait=server_wait, log=echo_err)
            job = RestoreJob(None, Path(out_dir), watch_names, side_by_side=side_by_side, dicom_out=dicom_out,
                             model_id=f"triton:{remote.model}", process=remote, bits=depth)
            w = Watcher(in_dir, out_dir, job, poll=poll, log=echo_err, record=remote.describe())
        except ValueError as exc:
            fail(str(exc))
        try:
            stats = w.run(once=once)
        finally:
            remote.close()
        click.echo(stats.summary())
        return
    opened = open_or_fail(lambda: open_pipeline(model_ref, backend, threads=threads, max_side=max_side, gate=gate,
                                                strength=strength))
    record = opened.model_info()
    with opened:
        try:
            job = RestoreJob(opened.pipeline, Path(out_dir), watch_names, gate=opened.gate,
                             side_by_side=side_by_side, dicom_out=dicom_out, model_id=str(record["model"]),
                             bits=depth)
            w = Watcher(in_dir, out_dir, job, poll=poll, log=echo_err, record=record)
        except ValueError as exc:
            fail(str(exc))
        stats = w.run(once=once)
    click.echo(stats.summary())
