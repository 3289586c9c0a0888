"""PyTorch -> ONNX export with dynamic H x W, metadata and a parity check (needs torch).

Only the torch side lives here; every later edit of the graph (metadata, FP16, CPU layout) is ftrt.onnx.
"""

from typing import Any

__all__ = ["ExportResult", "export_onnx"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from ftrt.deps import require

        require("torch", "ftrt export")
        import importlib

        return getattr(importlib.import_module("ftrt.export.onnx_export"), name)
    raise AttributeError(f"module 'ftrt.export' has no attribute {name!r}")
