"""``open_pipeline``: the restorer's backend, its fundus pipeline and the optional readability gate, opened in
one place for ``ftrt restore``, ``ftrt watch``, ``ftrt profile --end-to-end`` and the Python API."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ftrt.runtime.backends import open_backend
from ftrt.runtime.backends.base import Backend
from ftrt.runtime.pipeline import FundusPipeline, PipelineConfig
from ftrt.runtime.readability import ReadabilityScorer


@dataclass
class OpenPipeline:
    """What a restoring command holds while it runs; a context manager that closes every backend."""

    pipeline: FundusPipeline
    model: str  # the name or path it was opened from
    gate: ReadabilityScorer | None = None
    notes: list[str] = field(default_factory=list)  # things the user should know (printed once)

    @property
    def backend(self) -> Backend:
        return self.pipeline.backend

    def model_info(self) -> dict[str, Any]:
        """How a record names the model that made it: its card id, else the name or path it was opened from."""
        info = self.backend.info
        return {"model": info.metadata.get("card_id") or self.model, "backend": info.name,
                "precision": info.precision}

    def close(self) -> None:
        self.backend.close()
        if self.gate is not None:
            self.gate.backend.close()

    def __enter__(self) -> "OpenPipeline":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_scorer(backend: str, model: str, threads: int | None = None,
                threshold: float | None = None) -> ReadabilityScorer:
    """A readability classifier on ``backend``."""
    be = open_backend(backend, model, threads=threads)
    try:
        return ReadabilityScorer(be, threshold=threshold)
    except ValueError:
        be.close()
        raise


def check_restorer(backend: Backend, model: str) -> None:
    """Refuse a model that is not a restorer before any photograph is sent through it: by its metadata, then
    by one small probe image (another input layout, dtype, input count or output shape fails here, once,
    with the model named, instead of on every photograph of a batch)."""
    kind = backend.info.metadata.get("model")
    if kind not in (None, "", "restorer"):
        hint = "; score photographs with `ftrt assess`" if kind == "readability" else ""
        raise ValueError(f"{model}: a {kind} model, not a restorer{hint}")
    spec = backend.input_spec
    if len(spec.shape) != 4 or spec.shape[1] not in (3, None) and not isinstance(spec.shape[1], str):
        raise ValueError(f"{model}: input {spec.name} has shape {list(spec.shape)}; a restorer takes N x 3 x H x W")
    m = max(backend.pad_multiple, 1)
    side = -(-max(64, backend.min_side) // m) * m
    shape = (1, 3, side, side)
    if not backend.supports_shape(shape):
        return  # an engine built for other sizes: its profiles are checked against each photograph instead
    try:
        out = np.asarray(backend.run(np.full(shape, 0.5, np.float32)))
    except Exception as exc:  # noqa: BLE001 - any runtime's error on a probe means the model does not fit
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{model}: does not run on a 1x3x{side}x{side} float image as a restorer must ({msg[:200]})") \
            from None
    if out.shape != shape:
        raise ValueError(f"{model}: returns shape {list(out.shape)} for a {list(shape)} image; a restorer returns "
                         "the image's own shape")


def open_pipeline(model: str, backend: str = "auto", threads: int | None = None, max_side: int | None = None,
                  tile: int | None = 1024, gate: bool = False, gate_model: str = "readability",
                  cuda_graph: bool = False, steps: int | None = None, seed: int | None = None,
                  refine: bool = False, strength: float | None = None) -> OpenPipeline:
    """Open the restorer ``model`` (shipped name or file) on ``backend`` inside the fundus pipeline; with
    ``gate``, the readability classifier beside it (on the same runtime; with ``trt`` it picks its own backend
    from its file, since the shipped classifier is an ONNX, not an engine)."""
    be = open_backend(backend, model, threads=threads, cuda_graph=cuda_graph, steps=steps, seed=seed, refine=refine)
    try:
        check_restorer(be, model)
        pipeline = FundusPipeline(be, PipelineConfig(max_side=max_side, tile=tile or None,
                                                      strength=strength))
        try:
            pipeline.strength  # noqa: B018 - a bad metadata value fails here, once, with the file named
        except ValueError as exc:
            raise ValueError(f"{model}: {exc}") from None
        scorer = open_scorer("auto" if backend == "trt" else backend, gate_model, threads) if gate else None
    except BaseException:
        be.close()
        raise
    notes = []
    if be.info.name == "ort" and be.info.precision.startswith("int8"):
        notes.append("note: ONNX Runtime's CPU provider runs INT8 Q/DQ files slower than FP32 "
                     "(benchmarks/results/precision.md); --backend openvino runs them as INT8 on a CPU")
    return OpenPipeline(pipeline, model, scorer, notes)
