"""PyTorch models of ftrt (needs torch; the runtime never imports this package)."""

from ftrt.models.registry import PRESETS, build_model, count_parameters, list_models

__all__ = ["PRESETS", "build_model", "count_parameters", "list_models"]
