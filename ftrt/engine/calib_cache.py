"""TensorRT calibration cache (the legacy INT8 path of TensorRT 8.6 and 10, i.e. Jetson).

The text format TensorRT's calibrators read and write: a header line
``TRT-<version>-<algorithm>`` and one ``<tensor name>: <hex>`` line per tensor,
the hex being the IEEE-754 bits of the float32 *scale* (amax / 127). Written
from the same activation ranges as the Q/DQ model, so both paths quantize alike.
TensorRT ignores a cache whose header names another version: ``build-engine``
re-heads it for the TensorRT it runs on (:func:`retag`).
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Mapping

from ftrt.io import write_text_atomic

DEFAULT_VERSION = 8601  # TensorRT 8.6.1 (JetPack 6.0); 10.3.0 is 100300
ALGORITHM = "EntropyCalibration2"


def version_code(version: str) -> int:
    """'8.6.1' -> 8601, '10.3.0' -> 100300 (TensorRT's NV_TENSORRT_VERSION encoding)."""
    parts = [int(p) for p in version.split(".")[:3]] + [0, 0]
    major, minor, patch = parts[:3]
    return major * 1000 + minor * 100 + patch if major < 10 else major * 10000 + minor * 100 + patch


def _hex(scale: float) -> str:
    return f"{struct.unpack('>I', struct.pack('>f', scale))[0]:08x}"


def _float(text: str) -> float:
    return struct.unpack(">f", struct.pack(">I", int(text, 16)))[0]


def write_cache(amaxes: Mapping[str, float], path: str | Path, version: int = DEFAULT_VERSION) -> Path:
    """One line per tensor from its absolute maximum (``Ranges.amaxes()`` of the Q/DQ calibration)."""
    lines = [f"TRT-{version}-{ALGORITHM}"]
    for name in sorted(amaxes):
        amax = amaxes[name]
        # A tensor that never left zero still needs a positive scale.
        lines.append(f"{name}: {_hex(max(amax, 1e-8) / 127.0)}")
    return write_text_atomic(path, "\n".join(lines) + "\n")


def read_cache(path: str | Path) -> tuple[str, dict[str, float]]:
    """(header, {tensor: scale}); raises ValueError on a file that is not a calibration cache."""
    text = Path(path).read_text().splitlines()
    if not text or not text[0].startswith("TRT-"):
        raise ValueError(f"{path}: not a TensorRT calibration cache (no 'TRT-<version>-<algorithm>' header)")
    scales = {}
    for i, line in enumerate(text[1:], start=2):
        if not line.strip():
            continue
        name, sep, value = line.rpartition(":")
        try:
            scales[name.strip()] = _float(value.strip())
        except ValueError:
            raise ValueError(f"{path}:{i}: malformed line {line!r}") from None
        if not sep:
            raise ValueError(f"{path}:{i}: malformed line {line!r}")
    return text[0], scales


def retag(path: str | Path, version: int, out: str | Path) -> Path:
    """The same scales under the header of TensorRT ``version``."""
    header, scales = read_cache(path)
    algorithm = header.split("-", 2)[2] if header.count("-") >= 2 else ALGORITHM
    body = [f"TRT-{version}-{algorithm}"] + [f"{n}: {_hex(s)}" for n, s in scales.items()]
    return write_text_atomic(out, "\n".join(body) + "\n")
