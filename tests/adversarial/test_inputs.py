"""Hostile image files: every size guard holds before decoding, every bad file fails alone, by name, in one line."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from ftrt.cli import main
from ftrt.io import ImageReadError, read_image, write_image
from tests.adversarial import hostile as h

OVERSIZED: dict[str, Callable[[], bytes]] = {
    "jpeg_sof_after_192k_of_app_segments": lambda: h.jpeg_with_app_segments(3, claim=(h.HUGE, h.HUGE)),
    "jpeg_sof_in_first_kib": lambda: h.jpeg_with_app_segments(0, claim=(h.HUGE, h.HUGE)),
    "png": lambda: h.png_claiming(h.HUGE, h.HUGE),
    "tiff_little_endian": lambda: h.tiff_claiming(h.HUGE, h.HUGE, "<"),
    "tiff_big_endian": lambda: h.tiff_claiming(h.HUGE, h.HUGE, ">"),
    "bigtiff": lambda: h.tiff_claiming(h.HUGE, h.HUGE, "<", big=True),
    "bmp_top_down": lambda: h.bmp_claiming(h.HUGE, -h.HUGE),
    "webp_vp8x": lambda: h.webp_claiming(h.HUGE, h.HUGE, "VP8X"),
    "webp_vp8l": lambda: h.webp_claiming(16000, 16000, "VP8L"),
}


@pytest.mark.parametrize("kind", sorted(OVERSIZED))
def test_size_guard_refuses_before_decoding(tmp_path: Path, kind: str) -> None:
    p = tmp_path / f"{kind}.img"
    p.write_bytes(OVERSIZED[kind]())
    with pytest.raises(ImageReadError, match="above the 100 MP limit") as err:
        read_image(p)
    assert str(p) in str(err.value) and "\n" not in str(err.value)


def test_big_app_segments_with_an_honest_size_still_read(tmp_path: Path) -> None:
    p = tmp_path / "exif_heavy.jpg"
    p.write_bytes(h.jpeg_with_app_segments(3))
    img, depth = read_image(p)
    assert img.shape == (96, 96, 3) and depth == 8


BROKEN: dict[str, tuple[Callable[[], bytes], str]] = {
    "empty": (lambda: b"", "empty file"),
    "text_named_png": (lambda: b"hello, not an image\n" * 4, "not an image format ftrt reads"),
    "gif": (h.gif_bytes, "not an image format ftrt reads"),
    "png_without_ihdr": (lambda: b"\x89PNG\r\n\x1a\n" + bytes(30), "IHDR"),
    "png_zero_size": (lambda: h.png_claiming(0, 0), "empty 0x0"),
    "png_truncated": (lambda: cv2.imencode(".png", h.small_rgb())[1].tobytes()[:200], "truncated or damaged"),
    "jpeg_without_frame": (lambda: b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(7) + b"\xff\xd9", "frame header"),
    "jpeg_truncated": (lambda: h.jpeg_bytes()[:400], "truncated or damaged"),
    "tiff_directory_outside": (lambda: b"II*\x00" + (10**6).to_bytes(4, "little"), "outside the file"),
    "webp_garbage": (lambda: b"RIFF" + bytes(4) + b"WEBPVP8 " + bytes(8), "WebP"),
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_broken_files_fail_by_name_in_one_line(tmp_path: Path, kind: str) -> None:
    make, words = BROKEN[kind]
    p = tmp_path / f"{kind}.png"
    p.write_bytes(make())
    with pytest.raises(ImageReadError) as err:
        read_image(p)
    msg = str(err.value)
    assert msg.startswith(str(p)) and words in msg and "\n" not in msg


def test_float_tiff_with_nan_is_refused_not_written_black(tmp_path: Path) -> None:
    img = np.random.default_rng(0).random((64, 64, 3)).astype(np.float32)
    img[10:20, 10:20] = np.nan
    p = tmp_path / "nan.tif"
    assert cv2.imwrite(str(p), img)
    with pytest.raises(ImageReadError, match="NaN"):
        read_image(p)


def test_fifo_and_broken_link_fail_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "camera.png"
    os.mkfifo(fifo)
    link = tmp_path / "gone.png"
    link.symlink_to(tmp_path / "nowhere.png")
    with pytest.raises(ImageReadError, match="FIFO"):
        read_image(fifo)
    with pytest.raises(ImageReadError, match="broken symbolic link"):
        read_image(link)


def test_batch_goes_past_every_bad_file_and_fails_at_the_end(tmp_path: Path, random_onnx: Path) -> None:
    """One folder, one good photograph among hostile ones: the good one is written, each bad one gets one
    named line, the exit is non-zero, no traceback, nothing is left half-written."""
    d = tmp_path / "in"
    d.mkdir()
    write_image(d / "good.png", h.small_rgb().astype(np.float32) / 255)
    bad = {"huge.jpg": OVERSIZED["jpeg_sof_after_192k_of_app_segments"](), "empty.png": b"",
           "gif.png": h.gif_bytes(), "trunc.jpg": h.jpeg_bytes()[:400], "bigtiff.tif": OVERSIZED["bigtiff"]()}
    for name, data in bad.items():
        (d / name).write_bytes(data)
    os.mkfifo(d / "fifo.png")
    (d / "dangling.png").symlink_to(d / "missing.png")
    r = CliRunner().invoke(main, ["restore", str(d), "-o", str(tmp_path / "out"), "--model", str(random_onnx),
                                  "--max-side", "64", "--threads", "1"])
    assert r.exit_code == 1, r.output
    assert "Traceback" not in r.output and r.exception is None or isinstance(r.exception, SystemExit)
    errors = [line for line in r.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == len(bad) + 2
    for name in [*bad, "fifo.png", "dangling.png"]:
        assert sum(name in line for line in errors) == 1, name
    assert "1 written, 7 failed" in r.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.png"]


def test_output_folder_that_cannot_be_created_is_one_line(tmp_path: Path, random_onnx: Path) -> None:
    src = tmp_path / "a.png"
    write_image(src, h.small_rgb().astype(np.float32) / 255)
    blocker = tmp_path / "file"
    blocker.write_text("a file where the output folder's parent should be")
    r = CliRunner().invoke(main, ["restore", str(src), "-o", str(blocker / "out"), "--model", str(random_onnx)])
    assert r.exit_code == 2 and "cannot create it" in r.output and "Traceback" not in r.output


def test_very_long_names_are_written_shortened_and_distinct(tmp_path: Path, random_onnx: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    img = h.small_rgb().astype(np.float32) / 255
    long_a, long_b = "a" * 245 + "1.png", "a" * 245 + "2.png"
    write_image(d / long_a, img)
    write_image(d / long_b, img)
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["restore", str(d), "-o", str(out), "--model", str(random_onnx), "--max-side", "64",
                                  "--threads", "1", "--side-by-side"])
    assert r.exit_code == 0, r.output
    names = sorted(p.name for p in out.iterdir())
    assert len(names) == 4 and all(len(n.encode()) <= 255 for n in names)
