"""PyTorch models of ftrt (needs torch: the ``train`` extra; the runtime never imports this package).

Names are imported on first use, through ``require``, so a runtime-only install that reaches here gets one
line saying what to install instead of a traceback.
"""

from typing import Any

__all__ = ["PRESETS", "build_model", "count_parameters", "list_models"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from ftrt.deps import require

        require("torch", "ftrt's PyTorch models (export, train, the torch backends)")
        import importlib

        return getattr(importlib.import_module("ftrt.models.registry"), name)
    raise AttributeError(f"module 'ftrt.models' has no attribute {name!r}")
