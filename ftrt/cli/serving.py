"""``ftrt triton export`` and ``ftrt triton check``: a Triton model repository, written and verified offline."""

from __future__ import annotations

import json
from typing import Any

import click

from ftrt.cli.common import fail
from ftrt.cli.main import main
from ftrt.runtime.models import DEFAULT_MODEL


@main.group()
def triton() -> None:
    """Triton Inference Server model repositories."""


def _layout_options(f: Any) -> Any:
    f = click.option("--raw-backend", type=click.Choice(["onnxruntime", "python"]), default="onnxruntime",
                     show_default=True, help="Raw ONNX networks as onnxruntime_onnx models, or served by ftrt's "
                     "Python model (a Triton without the onnxruntime backend, e.g. nvidia-pytriton's).")(f)
    return click.option("--network", type=click.Choice(["inprocess", "bls"]), default="inprocess", show_default=True,
                        help="fundus_restore runs the network in its own process (ONNX Runtime), or calls the raw "
                        "model beside it through BLS (production: the network on the server's GPU backend).")(f)


@triton.command("export")
@click.option("--model", "models", multiple=True, default=[DEFAULT_MODEL], show_default=True,
              help="Shipped name, ONNX file or TensorRT engine (repeatable); the first ONNX restorer also backs "
                   "fundus_restore.")
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False), help="The new repository.")
@click.option("--max-batch", default=4, show_default=True, type=click.IntRange(min=0),
              help="max_batch_size of the raw networks (0: no batching).")
@click.option("--instances", default=1, show_default=True, type=click.IntRange(min=1), help="Instances per model.")
@click.option("--dynamic-batching", is_flag=True, help="Let Triton batch concurrent requests of the same size.")
@click.option("--gpu", is_flag=True, help="KIND_GPU instance groups (the production server), else KIND_CPU.")
@click.option("--gate", default="readability", show_default=True, help="Readability classifier served beside "
              "(and used by fundus_restore); 'none' for no gate.")
@click.option("--no-pipeline", is_flag=True, help="Raw networks only, no fundus_restore model.")
@_layout_options
@click.option("--json", "as_json", is_flag=True)
def triton_export(models: tuple[str, ...], out_dir: str, max_batch: int, instances: int, dynamic_batching: bool,
                  gpu: bool, gate: str, no_pipeline: bool, network: str, raw_backend: str, as_json: bool) -> None:
    """Write a Triton model repository: ONNX as onnxruntime_onnx, engines as tensorrt_plan, the readability
    classifier, and fundus_restore (Python backend: ftrt's whole pipeline on raw photographs)."""
    from ftrt.serving.repository import RepositoryError, check_repository, export_repository

    try:
        entries = export_repository(list(models), out_dir, max_batch=max_batch, instances=instances,
                                    dynamic_batching=dynamic_batching, gate=None if gate == "none" else gate,
                                    gpu=gpu, pipeline=not no_pipeline, network=network, raw_backend=raw_backend)
    except (RepositoryError, ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    problems = check_repository(out_dir)
    if as_json:
        click.echo(json.dumps({"repository": out_dir, "models": [{"name": e.name, "platform": e.platform,
                                                                  "max_batch_size": e.max_batch_size}
                                                                 for e in entries], "problems": problems}))
    else:
        for e in entries:
            how = " (served by ftrt's Python model)" if raw_backend == "python" and e.platform == "onnxruntime_onnx" else ""
            click.echo(f"{out_dir}/{e.name}: {e.platform}{how}, max_batch_size {e.max_batch_size}")
    if problems:
        for p in problems:
            click.echo(f"error: {p}", err=True)
        raise SystemExit(1)


@triton.command("check")
@click.argument("repo", type=click.Path(exists=True, file_okay=False))
def triton_check(repo: str) -> None:
    """Check a repository: configs parse, names match folders, ONNX configs match their models."""
    from ftrt.serving.repository import check_repository

    problems = check_repository(repo)
    for p in problems:
        click.echo(f"error: {p}", err=True)
    if problems:
        raise SystemExit(1)
    click.echo(f"{repo}: ok")


@main.command()
@click.option("--repo", type=click.Path(exists=True, file_okay=False), help="A repository from `ftrt triton "
              "export` (default: one written now from --model).")
@click.option("--model", "models", multiple=True, default=[DEFAULT_MODEL], show_default=True,
              help="Without --repo: the models to serve (as `ftrt triton export --model`).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback by default).")
@click.option("--http-port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--grpc-port", default=8001, show_default=True, type=click.IntRange(1, 65535))
@click.option("--metrics-port", default=8002, show_default=True, type=click.IntRange(1, 65535))
@click.option("--instances", default=1, show_default=True, type=click.IntRange(min=1), help="Instances per model.")
@click.option("--max-batch", default=4, show_default=True, type=click.IntRange(min=0))
@click.option("--dynamic-batching", is_flag=True)
@click.option("--serving-env", help="Environment with nvidia-pytriton and ftrt (default: $FTRT_SERVING_ENV or this "
              "interpreter's); not needed with a tritonserver on PATH.")
@click.option("--tritonserver", "binary", help="A tritonserver binary to use instead.")
@click.option("--ready-timeout", default=180.0, show_default=True, type=click.FloatRange(min=1))
@_layout_options
def serve(repo: str | None, models: tuple[str, ...], host: str, http_port: int, grpc_port: int, metrics_port: int,
          instances: int, max_batch: int, dynamic_batching: bool, serving_env: str | None, binary: str | None,
          ready_timeout: float, network: str, raw_backend: str) -> None:
    """Run Triton Inference Server with ftrt's models until SIGTERM / Ctrl-C; prints the endpoints when ready."""
    import shutil
    import tempfile
    from pathlib import Path

    from ftrt.serving.repository import RepositoryError, export_repository
    from ftrt.serving.server import Endpoints, ServeError, serve as run_server

    if len({http_port, grpc_port, metrics_port}) != 3:
        fail("--http-port, --grpc-port and --metrics-port must differ")
    tmp = None
    try:
        if repo is None:
            tmp = tempfile.mkdtemp(prefix="ftrt-repo-")
            repo = str(Path(tmp) / "models")
            export_repository(list(models), repo, max_batch=max_batch, instances=instances,
                              dynamic_batching=dynamic_batching, network=network, raw_backend=raw_backend)
        code = run_server(Path(repo), Endpoints(host, http_port, grpc_port, metrics_port), serving_env, binary,
                          ready_timeout, log=lambda m: click.echo(m, err=True))
    except (ServeError, RepositoryError, ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    raise SystemExit(0 if code in (0, -15) else 1)
