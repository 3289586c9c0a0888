"""Loading trained weights: shipped presets by name, or any ftrt safetensors file by path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from ftrt.models.registry import PRESETS, build_model
from ftrt.runtime.models import WEIGHTS_DIR, resolve_model

__all__ = ["WEIGHTS_DIR", "load_model", "read_metadata", "resolve_weights", "restore_array", "shipped_weights"]

def shipped_weights(name: str) -> Path | None:
    p = WEIGHTS_DIR / f"{name}.safetensors"
    return p if p.exists() else None


def read_metadata(path: str | Path) -> dict[str, Any]:
    """ftrt's metadata of a weights file, after checking the whole header (ftrt.io.weights)."""
    from ftrt.io.weights import ftrt_metadata, read_safetensors_header

    return ftrt_metadata(read_safetensors_header(path)[1], path)


def resolve_weights(name_or_path: str) -> Path:
    """A shipped name, a .safetensors file or a training run folder (ftrt.runtime.models.resolve_model)."""
    return resolve_model(name_or_path, "safetensors")


def load_model(name_or_path: str, preset: str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Build the model recorded in the file's metadata and load its weights (no pickle involved)."""
    path = resolve_weights(name_or_path)
    meta = read_metadata(path)
    name = preset or meta.get("preset")
    if name is None or name not in PRESETS:
        raise ValueError(f"{path}: metadata names no known preset; pass preset=")
    kwargs = meta.get("kwargs", {})
    if not isinstance(kwargs, dict):
        raise ValueError(f"{path}: metadata 'kwargs' is not a mapping")
    try:
        model = build_model(name, **kwargs)
        model.load_state_dict(load_file(str(path)))
    except (TypeError, RuntimeError) as exc:  # kwargs the preset does not take; tensors that do not fit
        raise ValueError(f"{path}: weights do not fit {name} ({str(exc).splitlines()[0][:160]})") from None
    model.eval()
    meta.setdefault("preset", name)
    meta["weights"] = str(path)
    return model, meta


@torch.no_grad()
def restore_array(model: nn.Module, img: "Any") -> "Any":
    """Run a restorer on one float RGB HxWx3 numpy image; returns the clipped result."""
    import numpy as np

    x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None].float()
    y = model(x)[0].clamp(0, 1).numpy().transpose(1, 2, 0)
    return np.ascontiguousarray(y)
