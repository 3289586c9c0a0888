"""ONNX metadata_props written by ftrt and read back by the torch-free runtime and ``ftrt info``."""

from __future__ import annotations

from typing import Any

import onnx

KEYS = ("ftrt_version", "model", "preset", "card_id", "value_range", "normalization", "channel_order",
        "layout", "pad_multiple", "opset", "precision", "min_side", "work_side", "labels", "input_side", "output",
        "thresholds")


def build_metadata(*, preset: str, card_id: str, opset: int, pad_multiple: int, precision: str,
                   ftrt_version: str, work_side: int | None = None) -> dict[str, str]:
    return {
        "work_side": str(work_side or 0),
        "ftrt_version": ftrt_version,
        "model": "restorer",
        "preset": preset,
        "card_id": card_id,
        "value_range": "0,1",
        "normalization": "none: RGB float in [0,1], output = input + residual, clip to [0,1]",
        "channel_order": "RGB",
        "layout": "NCHW",
        "pad_multiple": str(pad_multiple),
        "opset": str(opset),
        "precision": precision,
        "min_side": "32",
    }


def model_metadata(model: Any) -> dict[str, str]:
    """Keys that only one kind of model has; a restorer needs nothing beyond ``build_metadata``."""
    if getattr(model, "task", "") != "readability":
        return {}
    mean = ",".join(f"{v:g}" for v in model.mean.flatten().tolist())
    std = ",".join(f"{v:g}" for v in model.std.flatten().tolist())
    side = int(model.input_side)
    return {
        "model": "readability",
        "labels": ",".join(model.labels),
        "input_side": str(side),
        "min_side": str(side),
        "output": "sigmoid probabilities, one per label",
        "normalization": f"in graph: (x - mean) / std, mean {mean}, std {std}; feed RGB in [0,1]",
        "preprocess": "FOV crop to bounding box, pad to square with black, resize (area) to input_side",
    }


def set_metadata(proto: onnx.ModelProto, meta: dict[str, Any]) -> None:
    existing = {p.key: p for p in proto.metadata_props}
    for k, v in meta.items():
        if k in existing:
            existing[k].value = str(v)
        else:
            entry = proto.metadata_props.add()
            entry.key, entry.value = k, str(v)
    proto.producer_name = "ftrt"
    proto.producer_version = str(meta.get("ftrt_version", ""))


def get_metadata(proto: onnx.ModelProto) -> dict[str, str]:
    return {p.key: p.value for p in proto.metadata_props}
