from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from ftrt.degrade import degrade
from ftrt.fov import fov_mask, mask_bbox
from ftrt.metrics import psnr


def test_fov_mask_on_skimage_retina(retina_full: np.ndarray) -> None:
    m = fov_mask(retina_full)
    h, w = m.shape
    assert m[h // 2, w // 2] and not m[0, 0] and not m[-1, -1]
    y0, y1, x0, x1 = mask_bbox(m)
    # The photograph's FOV is a near-full circle: its box spans most of the frame and is about square.
    assert 0.85 < (x1 - x0) / w <= 1.0 and 0.85 < (y1 - y0) / h <= 1.0
    assert abs((y1 - y0) - (x1 - x0)) < 0.05 * w
    # A filled disc: area close to pi r^2 of its box, no holes from dark vessels.
    r = (x1 - x0) / 2
    assert abs(m.sum() / (np.pi * r * r) - 1) < 0.05


def test_fov_mask_full_frame_image() -> None:
    img = np.random.default_rng(0).uniform(0.3, 0.9, (64, 80, 3)).astype(np.float32)
    assert fov_mask(img).all()


def test_fov_mask_agrees_with_drive_masks(shared_data: Path) -> None:
    from ftrt.evaluate import read_mask
    from ftrt.io import read_image

    ious = []
    for img_path in sorted((shared_data / "drive" / "test" / "images").glob("*.tif"))[:6]:
        img, _ = read_image(img_path)
        ref = read_mask(shared_data / "drive" / "test" / "mask" / f"{img_path.stem}_mask.gif")
        ours = fov_mask(img)
        ious.append((ours & ref).sum() / (ours | ref).sum())
    assert min(ious) > 0.95, ious


@pytest.mark.parametrize("kind", ["cofe", "cataract", "mixed"])
def test_degrade_is_deterministic_and_records_params(retina: np.ndarray, kind: str) -> None:
    a, pa = degrade(retina, kind, np.random.default_rng(5))
    b, pb = degrade(retina, kind, np.random.default_rng(5))
    c, _ = degrade(retina, kind, np.random.default_rng(6))
    assert np.array_equal(a, b) and pa == pb
    assert not np.array_equal(a, c)
    json.dumps(pa)  # every parameter is JSON-serialisable
    assert pa["kind"] == kind and all(step in pa for step in pa["steps"])
    assert a.dtype == np.float32 and a.shape == retina.shape
    assert 0.0 <= a.min() and a.max() <= 1.0
    mask = fov_mask(retina)
    assert not a[~mask].any(), "degraded image must be black outside the FOV"
    assert psnr(a, retina * mask[..., None], mask) < 35, "degradation must change the image"


@pytest.mark.parametrize("kind", ["cofe", "cataract"])
def test_degrade_is_relative_to_image_size(retina_full: np.ndarray, kind: str) -> None:
    """A 1024 px photograph degraded with the same draw, shrunk to 512 px, matches the 512 px one."""
    big = cv2.resize(retina_full, (1024, 1024), interpolation=cv2.INTER_AREA)
    small = cv2.resize(retina_full, (512, 512), interpolation=cv2.INTER_AREA)
    mask_big, mask_small = fov_mask(big), fov_mask(small)
    db, pb = degrade(big, kind, np.random.default_rng(11), mask=mask_big)
    ds, ps = degrade(small, kind, np.random.default_rng(11), mask=mask_small)
    step = pb[kind]
    assert step["blur_sigma"] == pytest.approx(2 * ps[kind]["blur_sigma"], rel=1e-4)
    shrunk = cv2.resize(db, (512, 512), interpolation=cv2.INTER_AREA)
    inner = cv2.erode(mask_small.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    assert psnr(shrunk, ds, inner) > 30


def test_unknown_kind(retina: np.ndarray) -> None:
    with pytest.raises(ValueError, match="unknown degradation kind"):
        degrade(retina, "fog", np.random.default_rng(0))
