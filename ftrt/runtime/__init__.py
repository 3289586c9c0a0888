"""Torch-free inference runtime: numpy, OpenCV and ONNX Runtime (TensorRT where present).

``open_pipeline`` is the one way in: it opens the backend (and the readability gate) and returns the
fundus pipeline that ``ftrt restore``, ``ftrt watch``, ``ftrt profile --end-to-end`` and the precision
report all run. Names are imported lazily, so reading the backend table costs no OpenCV or ONNX Runtime.
"""

from __future__ import annotations

import importlib
from typing import Any

_NAMES = {
    "BACKENDS": "ftrt.runtime.backends.table",
    "Backend": "ftrt.runtime.backends.base",
    "BackendUnavailable": "ftrt.runtime.backends.base",
    "make_backend": "ftrt.runtime.backends",
    "open_backend": "ftrt.runtime.backends",
    "FundusPipeline": "ftrt.runtime.pipeline",
    "PipelineConfig": "ftrt.runtime.pipeline",
    "RestoreResult": "ftrt.runtime.pipeline",
    "OpenPipeline": "ftrt.runtime.api",
    "open_pipeline": "ftrt.runtime.api",
    "open_scorer": "ftrt.runtime.api",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        return getattr(importlib.import_module(_NAMES[name]), name)
    raise AttributeError(f"module 'ftrt.runtime' has no attribute {name!r}")
