"""Generators of hostile and careless inputs for the adversarial suite (all synthesised, nothing shipped)."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np

HUGE = 20000  # 20000 x 20000 = 400 MP, four times ftrt's limit


def small_rgb(side: int = 96) -> np.ndarray:
    from skimage import data

    return cv2.resize(data.retina(), (side, side), interpolation=cv2.INTER_AREA)


def jpeg_bytes(img: np.ndarray | None = None) -> bytes:
    img = small_rgb() if img is None else img
    ok, buf = cv2.imencode(".jpg", img[..., ::-1])
    assert ok
    return buf.tobytes()


def jpeg_with_app_segments(n_segments: int, claim: tuple[int, int] | None = None) -> bytes:
    """A JPEG whose frame header follows ``n_segments`` APP segments of 60 KiB (cameras write big EXIF and
    maker notes); ``claim``: (width, height) written into the frame header instead of the real size."""
    data = bytearray(jpeg_bytes())
    app = b"\xff\xe1" + struct.pack(">H", 60002) + bytes(60000)
    data[2:2] = app * n_segments
    if claim is not None:
        i = 2
        while True:
            marker, length = data[i + 1], struct.unpack(">H", data[i + 2:i + 4])[0]
            if 0xC0 <= marker <= 0xC2:
                data[i + 5:i + 9] = struct.pack(">HH", claim[1], claim[0])
                break
            i += 2 + length
    return bytes(data)


def png_claiming(w: int, h: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk)) + bytes(64)


def tiff_claiming(w: int, h: int, order: str = "<", big: bool = False) -> bytes:
    """A TIFF header and first directory claiming w x h (no pixel data behind it)."""
    mark = b"II" if order == "<" else b"MM"
    if big:
        head = mark + struct.pack(order + "HHHQ", 43, 8, 0, 16)
        entries = [struct.pack(order + "HHQQ", 256, 16, 1, w), struct.pack(order + "HHQQ", 257, 16, 1, h)]
        return head + struct.pack(order + "Q", len(entries)) + b"".join(entries) + struct.pack(order + "Q", 0)
    head = mark + struct.pack(order + "HI", 42, 8)
    entries = [struct.pack(order + "HHII", 256, 4, 1, w), struct.pack(order + "HHII", 257, 4, 1, h)]
    return head + struct.pack(order + "H", len(entries)) + b"".join(entries) + struct.pack(order + "I", 0)


def bmp_claiming(w: int, h: int) -> bytes:
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + len(info), 0, 0, 14 + len(info)) + info


def webp_claiming(w: int, h: int, chunk: str = "VP8X") -> bytes:
    if chunk == "VP8X":
        body = bytes([0x10, 0, 0, 0]) + (w - 1).to_bytes(3, "little") + (h - 1).to_bytes(3, "little")
    elif chunk == "VP8L":
        bits = (w - 1) | ((h - 1) << 14)
        body = bytes([0x2F]) + bits.to_bytes(4, "little") + bytes(8)
    else:
        body = bytes(3) + b"\x9d\x01\x2a" + struct.pack("<HH", w, h) + bytes(8)
    chunk_bytes = chunk.encode().ljust(4) + struct.pack("<I", len(body)) + body
    return b"RIFF" + struct.pack("<I", 4 + len(chunk_bytes)) + b"WEBP" + chunk_bytes


def gif_bytes() -> bytes:
    return b"GIF89a" + struct.pack("<HH", 10, 10) + bytes(20)
