"""Image dimensions from the file's own header, before anything is decoded.

A header can claim any size, and a decoder allocates what it claims: the size guard must see the frame
size of every format ftrt reads, wherever the format lets it sit (a JPEG's frame header may follow any
amount of APP segments; a TIFF's first directory may sit at the end of the file). A format this module
does not know is refused rather than handed to a decoder unguarded.
"""

from __future__ import annotations

FORMATS = ("PNG", "JPEG", "TIFF", "BMP", "WebP")


class ProbeError(ValueError):
    """The header is damaged or of an unknown format (message without the file name)."""


def probe(data: bytes) -> tuple[str, int, int]:
    """(format, width, height) of an encoded image."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise ProbeError("PNG without its IHDR header (truncated or damaged)")
        return "PNG", int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:2] == b"\xff\xd8":
        return ("JPEG", *_jpeg(data))
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return ("TIFF", *_tiff(data))
    if data[:2] == b"BM":
        return ("BMP", *_bmp(data))
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ("WebP", *_webp(data))
    raise ProbeError(f"not an image format ftrt reads ({', '.join(FORMATS)} or DICOM)")


def _jpeg(data: bytes) -> tuple[int, int]:
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:  # stray bytes between segments: some writers leave them, decoders skip them
            i += 1
            continue
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no frame header came first
            break
        length = int.from_bytes(data[i + 2:i + 4], "big")
        if length < 2:
            raise ProbeError("JPEG segment with an impossible length")
        # SOF0..SOF15 carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) share the range.
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if i + 9 > n:
                break
            return int.from_bytes(data[i + 7:i + 9], "big"), int.from_bytes(data[i + 5:i + 7], "big")
        i += 2 + length
    raise ProbeError("JPEG without a frame header (truncated or damaged)")


def _tiff(data: bytes) -> tuple[int, int]:
    order = "little" if data[:2] == b"II" else "big"

    def u(a: int, k: int) -> int:
        if a + k > len(data):
            raise ProbeError("TIFF directory outside the file (truncated)")
        return int.from_bytes(data[a:a + k], order)  # type: ignore[arg-type]

    big = u(2, 2) == 43
    off = u(8, 8) if big else u(4, 4)
    count = u(off, 8) if big else u(off, 2)
    if count > 4096:
        raise ProbeError("TIFF directory with an impossible entry count")
    entry, first = (20, off + 8) if big else (12, off + 2)
    dims: dict[int, int] = {}
    for k in range(count):
        e = first + k * entry
        tag, typ = u(e, 2), u(e + 2, 2)
        if tag in (256, 257):
            value_at = e + (12 if big else 8)
            dims[tag] = u(value_at, 2) if typ == 3 else u(value_at, 8 if typ == 16 else 4)
    if 256 not in dims or 257 not in dims:
        raise ProbeError("TIFF directory without ImageWidth / ImageLength")
    return dims[256], dims[257]


def _bmp(data: bytes) -> tuple[int, int]:
    if len(data) < 26:
        raise ProbeError("BMP header truncated")
    header = int.from_bytes(data[14:18], "little")
    if header == 12:  # BITMAPCOREHEADER: 16-bit sizes
        return int.from_bytes(data[18:20], "little"), int.from_bytes(data[20:22], "little")
    w = int.from_bytes(data[18:22], "little", signed=True)
    h = int.from_bytes(data[22:26], "little", signed=True)
    return abs(w), abs(h)  # a negative height is a top-down bitmap


def _webp(data: bytes) -> tuple[int, int]:
    chunk, body = data[12:16], data[20:]
    if chunk == b"VP8 " and len(body) >= 10 and body[3:6] == b"\x9d\x01\x2a":
        return int.from_bytes(body[6:8], "little") & 0x3FFF, int.from_bytes(body[8:10], "little") & 0x3FFF
    if chunk == b"VP8L" and len(body) >= 5 and body[0] == 0x2F:
        bits = int.from_bytes(body[1:5], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(body) >= 10:
        return int.from_bytes(body[4:7], "little") + 1, int.from_bytes(body[7:10], "little") + 1
    raise ProbeError("WebP without a readable frame header (truncated or damaged)")
