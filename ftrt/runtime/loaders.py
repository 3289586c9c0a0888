"""Loaders: what a backend opens, prepared before it opens it (Polygraphy's loader / runner split).

A backend never edits a graph. It calls its loader, gets a :class:`PreparedModel` (the file, the
serialized graph to run if it differs from the file, and one line saying what was done) and opens
that. ``open_backend`` chooses the loader: ONNX Runtime's CPU provider gets the CPU layout passes
(ftrt.onnx.cpu_layout), every other runtime the file as exported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class PreparedModel:
    path: Path  # the file it came from: errors name it
    graph: bytes | None = None  # the graph to run when it is not the file as it is
    note: str = "as exported"

    @property
    def source(self) -> str | bytes:
        """What ONNX Runtime's InferenceSession takes: the rewritten graph, else the file's path."""
        return self.graph if self.graph is not None else str(self.path)


class ModelLoader(Protocol):
    @property
    def path(self) -> Path: ...

    def __call__(self) -> PreparedModel: ...


@dataclass(frozen=True)
class FileLoader:
    """The file exactly as exported."""

    path: Path

    def __call__(self) -> PreparedModel:
        return PreparedModel(Path(self.path))


@dataclass(frozen=True)
class CpuLayoutLoader:
    """The graph laid out for ONNX Runtime's blocked CPU kernels (``block``: the MLAS channel block, None for
    this CPU's); the file as exported where no pass applies or ``onnx`` is not installed."""

    path: Path
    block: int | None = None

    def __call__(self) -> PreparedModel:
        from ftrt.onnx.cpu_layout import cpu_model

        graph, note = cpu_model(self.path, self.block)
        return PreparedModel(Path(self.path), graph, note)


def as_loader(model: "str | Path | ModelLoader") -> ModelLoader:
    return model if callable(model) else FileLoader(Path(model))
