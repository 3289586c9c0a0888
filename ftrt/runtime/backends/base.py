"""The backend interface every runtime implements (ONNX Runtime, PyTorch, TensorRT).

A backend takes an NCHW float32 batch in [0, 1] and returns the same-shaped
result. It owns no pre/post-processing: the fundus pipeline does that once for
every backend, so backends differ only in where the arithmetic runs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ftrt.deps import MissingDependency, require


class BackendUnavailable(RuntimeError):
    """The requested backend (or its accelerator) is not present on this machine."""


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int | str | None, ...]
    dtype: str


@dataclass(frozen=True)
class ShapeProfile:
    """Optimisation profile of an engine: (min, opt, max) as (N, C, H, W); ORT CPU has one unbounded profile."""

    min: tuple[int, int, int, int]
    opt: tuple[int, int, int, int]
    max: tuple[int, int, int, int]

    def fits(self, shape: tuple[int, ...]) -> bool:
        return all(lo <= s <= hi for lo, s, hi in zip(self.min, shape, self.max))


class BackendMissing(BackendUnavailable, MissingDependency):
    """The backend's package is not installed: a profile row says "unavailable", a command ends with the install
    line (exit 1)."""


def require_for_backend(module: str, backend: str) -> Any:
    try:
        return require(module, f"the {backend} backend")
    except MissingDependency as exc:
        raise BackendMissing(str(exc)) from None


@dataclass
class BackendInfo:
    name: str
    device: str
    precision: str
    providers: list[str] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    profiles: list[ShapeProfile] = field(default_factory=list)
    graph: str = ""  # how the file was changed at load time, if it was (e.g. CPU layout rewrites)


class Backend(ABC):
    """open() -> run(batch) ... -> close(); usable as a context manager.

    GPU backends also fill ``last_timing`` after each ``run``: milliseconds of host-to-device copy
    (``h2d``), ``compute`` and device-to-host copy (``d2h``), measured on the device (CUDA events)
    or with synchronous calls; CPU backends leave it empty.
    """

    info: BackendInfo
    last_timing: dict[str, float] = {}
    # How ``last_timing`` is measured: "cuda events" or "synchronous calls" where a backend fills it.
    timing = "host clock"

    @abstractmethod
    def open(self) -> "Backend": ...

    @property
    @abstractmethod
    def input_spec(self) -> TensorSpec: ...

    @abstractmethod
    def run(self, batch: np.ndarray) -> np.ndarray: ...

    def run_inputs(self, inputs: list[np.ndarray]) -> np.ndarray:
        """Run a model of several inputs (given in the graph's order); its first output. A diffusion pipeline's
        denoiser takes four; backends that run single-input restorers only say so."""
        if len(inputs) == 1:
            return self.run(inputs[0])
        raise BackendUnavailable(f"the {self.info.name} backend runs single-input models only")

    def close(self) -> None:  # noqa: B027 - optional for backends without resources
        pass

    def gpu_memory_mb(self) -> float | None:
        """GPU memory in use, where the backend can tell (None on CPU)."""
        return None

    def supports_shape(self, shape: tuple[int, ...]) -> bool:
        """Whether ``run`` accepts this NCHW shape as-is (engines have bounded profiles)."""
        return not self.info.profiles or any(p.fits(shape) for p in self.info.profiles)

    def max_square_side(self) -> int | None:
        """The largest square side some profile admits; None when shapes are unbounded (ORT, torch)."""
        if not self.info.profiles:
            return None
        return max(min(p.max[2], p.max[3]) for p in self.info.profiles)

    @property
    def pad_multiple(self) -> int:
        return int(self.info.metadata.get("pad_multiple", 1))

    @property
    def min_side(self) -> int:
        return int(self.info.metadata.get("min_side", 1))

    def __enter__(self) -> "Backend":
        return self.open()

    def __exit__(self, *exc: Any) -> None:
        self.close()
