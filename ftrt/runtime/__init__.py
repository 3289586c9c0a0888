"""Torch-free inference runtime: numpy, OpenCV and ONNX Runtime (TensorRT where present)."""

from ftrt.runtime.backends import BACKENDS, Backend, BackendUnavailable, make_backend, open_backend
from ftrt.runtime.pipeline import FundusPipeline, PipelineConfig, RestoreResult

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendUnavailable",
    "FundusPipeline",
    "PipelineConfig",
    "RestoreResult",
    "make_backend",
    "open_backend",
]
