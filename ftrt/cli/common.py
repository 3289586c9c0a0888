"""What every command module shares: the one-line failure, batch printing, and the choice lists."""

from __future__ import annotations

import json
import sys
from typing import Any, Callable, NoReturn

import click

from ftrt.degrade.kinds import KINDS
from ftrt.runtime.backends.table import BACKENDS

# The runtime's and the degradations' own tables (import-free modules: `ftrt --help` loads no runtime).
BACKEND_CHOICES = list(BACKENDS)
DEGRADE_KINDS = list(KINDS)
# Written images' bit depth (`restore --bits`, `watch --bits`): "source" keeps each input's, which RestoreJob
# spells 0.
BITS_CHOICE = click.Choice(["source", "8", "16"])


def output_depth(bits: str) -> int:
    """A --bits choice as ftrt.jobs.RestoreJob's ``bits``."""
    return 0 if bits == "source" else int(bits)


def fail(message: str) -> NoReturn:
    """One line on stderr and exit 2 (a usage or input problem, nothing written)."""
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def echo_err(message: str) -> None:
    click.echo(message, err=True)


def run_batch(job: Callable[[], list[dict[str, Any]]], as_json: bool, verb: str = "written",
              show: Callable[[dict[str, Any]], str | None] | None = None,
              summary: Callable[[list[dict[str, Any]]], list[str]] | None = None) -> None:
    """Run a batch job, print each record (JSON lines, or ``show``'s line), a summary; exit 1 if any failed."""
    from ftrt.io import InputError

    try:
        records = job()
    except InputError as exc:
        fail(str(exc))
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


def open_or_fail(make: Callable[[], Any]) -> Any:
    """Open a backend (or pipeline) or end with its one-line reason; print its notes once."""
    from ftrt.deps import MissingDependency
    from ftrt.engine.sidecar import EngineMismatch
    from ftrt.runtime import BackendUnavailable

    try:
        opened = make()
    except MissingDependency:
        raise  # the group prints the install line (exit 1)
    except (BackendUnavailable, EngineMismatch, FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    for note in getattr(opened, "notes", []):
        echo_err(note)
    return opened


def working_side(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    """--max-side: 0 (native resolution) or a side a fundus photograph can be read at (>= 64 px)."""
    if value is not None and value != 0 and value < 64:
        raise click.BadParameter(f"{value} px is too small to restore at; give 0 (native) or at least 64")
    return value


def tile_side(ctx: click.Context, param: click.Parameter, value: int) -> int:
    """--tile: 0 (never tile) or at least twice the pipeline's tile overlap."""
    from ftrt.runtime.pipeline import PipelineConfig

    least = 2 * PipelineConfig.overlap
    if value != 0 and value < least:
        raise click.BadParameter(f"{value} px tiles are smaller than twice the {least // 2} px overlap; give 0 "
                                 f"(no tiling) or at least {least}")
    return value
