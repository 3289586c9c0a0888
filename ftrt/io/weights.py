"""The safetensors header, read and checked without torch: weights files are untrusted input.

A safetensors file is an 8-byte little-endian header length, a JSON header, then the tensor bytes. Every
claim of the header is checked against the file before anything trusts it (the header length against the
file's size, each tensor's dtype, shape and byte range against the data section), so a truncated or
crafted file fails with its name and the reason instead of a parser's traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# Bytes per element of the dtypes safetensors defines.
DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
               "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
MAX_HEADER = 100 * 2**20  # safetensors' own limit


class WeightsFileError(ValueError):
    """A weights file that is not a well-formed safetensors file (the message names it)."""


def read_safetensors_header(path: str | Path) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """(tensors: name -> {dtype, shape, data_offsets}, metadata) of a checked safetensors file."""
    path = Path(path)

    def bad(why: str) -> WeightsFileError:
        return WeightsFileError(f"{path}: not a valid safetensors file ({why})")

    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            if size < 8:
                raise bad("shorter than its 8-byte header length")
            if n < 2 or n > MAX_HEADER or 8 + n > size:
                raise bad(f"header length {n} does not fit a {size}-byte file")
            raw = fh.read(n)
    except OSError as exc:
        raise WeightsFileError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise bad("header is not JSON") from None
    if not isinstance(header, dict):
        raise bad("header is not a JSON object")
    meta = header.pop("__metadata__", {}) or {}
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise bad("__metadata__ is not a map of strings")
    data = size - 8 - n
    ends = []
    for name, t in header.items():
        if not isinstance(t, dict) or t.get("dtype") not in DTYPE_BYTES:
            raise bad(f"tensor {name!r} has no known dtype")
        shape, offsets = t.get("shape"), t.get("data_offsets")
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise bad(f"tensor {name!r} has an invalid shape")
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(isinstance(o, int) for o in offsets)
                or not 0 <= offsets[0] <= offsets[1] <= data):
            raise bad(f"tensor {name!r} lies outside the file (truncated?)")
        count = 1
        for d in shape:
            count *= d
        if offsets[1] - offsets[0] != count * DTYPE_BYTES[t["dtype"]]:
            raise bad(f"tensor {name!r}: {offsets[1] - offsets[0]} bytes for shape {shape} {t['dtype']}")
        ends.append(offsets[1])
    if ends and max(ends) != data:
        raise bad(f"{data - max(ends)} bytes of tensor data not described by the header")
    return header, meta


def ftrt_metadata(meta: dict[str, str], path: str | Path) -> dict[str, Any]:
    """ftrt's own description stored in the header's metadata (``{}`` for a bare checkpoint)."""
    try:
        value = json.loads(meta.get("ftrt", "{}"))
    except json.JSONDecodeError:
        raise WeightsFileError(f"{path}: ftrt metadata in the header is not JSON") from None
    if not isinstance(value, dict):
        raise WeightsFileError(f"{path}: ftrt metadata in the header is not a JSON object")
    return value
