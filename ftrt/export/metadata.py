"""ONNX metadata_props written by ftrt and read back by the torch-free runtime and ``ftrt info``."""

from __future__ import annotations

from typing import Any

import onnx

KEYS = ("ftrt_version", "model", "preset", "card_id", "value_range", "normalization", "channel_order",
        "layout", "pad_multiple", "opset", "precision", "min_side", "work_side")


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
