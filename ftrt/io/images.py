"""Reading and writing fundus photographs as float RGB arrays in [0, 1].

Everything downstream works on ``float32`` HxWx3 RGB in [0, 1]; the bit depth
of the source is returned so outputs can be written back at the same depth.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from ftrt.io.atomic import atomic_write_bytes
from ftrt.io.files import ImageReadError, check_regular_file
from ftrt.io.probe import ProbeError, probe

# A header can claim any size; refuse before decoding rather than allocate gigabytes.
# Fundus cameras top out near 24 MP; 100 MP leaves room for stitched montages.
MAX_PIXELS = 100_000_000


def read_image(path: str | os.PathLike[str]) -> tuple[np.ndarray, int]:
    """Read an image (PNG, JPEG, TIFF, BMP or a DICOM photograph) as float32 RGB in [0, 1];
    returns (image, bit depth 8 or 16)."""
    from ftrt.io.dicom import is_dicom, read_dicom

    path = Path(path)
    check_regular_file(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot read file ({exc.strerror})") from exc
    if data.size == 0:
        raise ImageReadError(f"{path}: empty file")
    if is_dicom(path, data[:132].tobytes()):
        d = read_dicom(path)
        return d.image, d.depth
    try:
        fmt, w, h = probe(data.tobytes())
    except ProbeError as exc:
        raise ImageReadError(f"{path}: {exc}") from None
    if w <= 0 or h <= 0:
        raise ImageReadError(f"{path}: {fmt} header claims an empty {w}x{h} image")
    if w * h > MAX_PIXELS:
        raise ImageReadError(f"{path}: header claims {w}x{h} pixels ({w * h / 1e6:.0f} MP), "
                             f"above the {MAX_PIXELS / 1e6:.0f} MP limit")
    try:
        img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED | cv2.IMREAD_ANYDEPTH)
    except cv2.error as exc:
        raise ImageReadError(f"{path}: {fmt} decoder failed ({str(exc).strip().splitlines()[-1][:120]})") from None
    if img is None:
        raise ImageReadError(f"{path}: not a readable {fmt} image (truncated or damaged)")
    if img.shape[0] * img.shape[1] > MAX_PIXELS:  # a header that lied about its size
        raise ImageReadError(f"{path}: decoded {img.shape[1]}x{img.shape[0]} pixels, above the limit")
    return _to_float_rgb(img, path)


def _to_float_rgb(img: np.ndarray, path: Path) -> tuple[np.ndarray, int]:
    if img.dtype == np.uint8:
        depth, scale = 8, 255.0
    elif img.dtype == np.uint16:
        depth, scale = 16, 65535.0
    elif img.dtype in (np.float32, np.float64):
        depth, scale = 8, 1.0
    else:
        raise ImageReadError(f"{path}: unsupported pixel type {img.dtype}")
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    elif img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    elif img.ndim == 3 and img.shape[2] == 1:
        img = cv2.cvtColor(img[:, :, 0], cv2.COLOR_GRAY2RGB)
    else:
        raise ImageReadError(f"{path}: unsupported channel layout {img.shape}")
    out = img.astype(np.float32) / scale
    if scale == 1.0 and not np.isfinite(out).all():
        # np.clip keeps NaN, and NaN becomes black on the way out: refuse instead of writing a black image.
        raise ImageReadError(f"{path}: floating-point image with NaN or infinite pixels")
    return np.clip(out, 0.0, 1.0), depth


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Float [0, 1] -> uint8 with rounding (not truncation, which darkens by half a level)."""
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)


def _encode(img: np.ndarray, suffix: str, depth: int) -> bytes:
    if depth == 16:
        arr = np.clip(np.rint(img * 65535.0), 0, 65535).astype(np.uint16)
    else:
        arr = to_uint8(img)
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    params: list[int] = []
    if suffix in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, 95]
    elif suffix == ".png":
        # Level 1: outputs are large fundus images; level 9 costs seconds for ~5% smaller files.
        params = [cv2.IMWRITE_PNG_COMPRESSION, 1]
    ok, buf = cv2.imencode(suffix, arr, params)
    if not ok:
        raise OSError(f"cannot encode image as {suffix}")
    return buf.tobytes()


def write_image(path: str | os.PathLike[str], img: np.ndarray, depth: int = 8) -> Path:
    """Write float RGB [0, 1] atomically (temp file in the same folder, then rename)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if depth == 16 and suffix not in (".png", ".tif", ".tiff"):
        depth = 8
    atomic_write_bytes(path, _encode(img, suffix, depth))
    return path
