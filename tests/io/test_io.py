from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from ftrt.io import ImageReadError, InputError, collect_inputs, ensure_output_dir, read_image, write_image


def test_16bit_png_round_trip(tmp_path: Path, retina: np.ndarray) -> None:
    p = write_image(tmp_path / "a.png", retina, depth=16)
    assert cv2.imread(str(p), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    back, depth = read_image(p)
    assert depth == 16 and np.abs(back - retina).max() < 1e-4


def test_grey_and_rgba_become_rgb(tmp_path: Path) -> None:
    grey = (np.arange(64 * 48) % 256).astype(np.uint8).reshape(64, 48)
    cv2.imwrite(str(tmp_path / "g.jpg"), grey)
    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[..., 2] = 255  # red in BGRA
    rgba[..., 3] = 255
    cv2.imwrite(str(tmp_path / "c.png"), rgba)
    g, _ = read_image(tmp_path / "g.jpg")
    c, _ = read_image(tmp_path / "c.png")
    assert g.shape == (64, 48, 3) and c.shape == (20, 30, 3)
    assert c[0, 0].tolist() == [1.0, 0.0, 0.0]


def test_unreadable_files_raise_one_clear_error(tmp_path: Path, retina_png: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(retina_png.read_bytes()[:200])
    (tmp_path / "empty.png").write_bytes(b"")
    for name in ("notes.txt", "cut.png", "empty.png", "missing.png"):
        with pytest.raises(ImageReadError, match=name):
            read_image(tmp_path / name)


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path: Path, retina: np.ndarray) -> None:
    write_image(tmp_path / "x.png", retina)
    write_image(tmp_path / "x.png", retina * 0.5)
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]


def test_collect_inputs_and_output_guard(tmp_path: Path, retina_png: Path) -> None:
    (retina_png.parent / "b.jpg").write_bytes(retina_png.read_bytes())
    (retina_png.parent / "skip.txt").write_text("x")
    files = collect_inputs([str(retina_png.parent), str(retina_png), str(retina_png.parent / "*.png")])
    assert sorted(p.name for p in files) == ["b.jpg", "retina.png"]
    with pytest.raises(InputError, match="is an input folder"):
        ensure_output_dir(retina_png.parent, files)
    with pytest.raises(InputError, match="no such file"):
        collect_inputs([str(tmp_path / "nope" / "*.png")])
