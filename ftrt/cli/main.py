"""The ``ftrt`` group: every command module registers on it, and a missing optional dependency ends any
command with one line that says what to install (exit 1), never a traceback."""

from __future__ import annotations

import sys
from typing import Any

import click

from ftrt import __version__
from ftrt.deps import MissingDependency, missing_message, optional_root


class FtrtGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MissingDependency as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except ModuleNotFoundError as exc:
            root = optional_root(exc)
            if root is None:
                raise
            command = " ".join(["ftrt", *([ctx.invoked_subcommand] if ctx.invoked_subcommand else [])])
            click.echo(f"error: {missing_message(root, command)}", err=True)
            sys.exit(1)


@click.group(cls=FtrtGroup)
@click.version_option(__version__, prog_name="ftrt")
def main() -> None:
    """Fundus-image restoration: train, degrade, evaluate, and deploy."""
