from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ftrt.io import write_image
from ftrt.training.data import load_pool
from ftrt.interlace import THRESHOLD, deinterlace, row_comb_gain


def _fundus_like(rng: np.random.Generator, h: int = 256, w: int = 256) -> np.ndarray:
    """Smooth shading, isotropic fine texture (sensor noise) and a dark horizontal vessel of Gaussian profile."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = 0.45 + 0.1 * np.sin(xx / 40) * np.cos(yy / 55) - 0.12 * np.exp(-0.5 * ((yy - h / 2) / 2.5) ** 2)
    base = base + cv2.GaussianBlur(rng.normal(0, 0.03, (h, w)).astype(np.float32), (0, 0), 0.8)
    base = base + rng.normal(0, 0.01, (h, w)).astype(np.float32)
    return np.clip(np.stack([base * 1.4, base, base * 0.5], -1), 0, 1).astype(np.float32)


def _comb(img: np.ndarray, amplitude: float = 0.03) -> np.ndarray:
    out = img.copy()
    out[1::2] += amplitude  # the odd field brighter, as an interlacing camera writes it
    return np.clip(out, 0, 1)


def test_a_row_comb_is_measured_and_taken_out_while_a_vessel_keeps_its_profile() -> None:
    rng = np.random.default_rng(0)
    clean = _fundus_like(rng)
    combed = _comb(clean)
    assert row_comb_gain(clean)[0] < THRESHOLD < row_comb_gain(combed)[0]

    out, excess = deinterlace(combed)
    assert excess > THRESHOLD
    assert row_comb_gain(out)[0] < 1.15
    # The odd field is no longer brighter than the even one ...
    def field_step(img: np.ndarray) -> float:
        g = img[8:-8, :, 1]
        return float((g[1:-1:2] - 0.5 * (g[0:-2:2] + g[2::2])).mean())

    assert field_step(combed) > 0.025
    assert abs(field_step(out)) < 0.2 * field_step(combed)  # down to the fine power along rows, not below
    # ... and what is wider than 4 px is where it was: the vessel's profile across rows, averaged along it.
    c = slice(60, 196)
    profile_out = out[118:138, c, 1].mean(1)
    profile_clean = clean[118:138, c, 1].mean(1) + 0.015  # the comb's mean brightening stays, it is not fine
    assert np.abs(profile_out - profile_clean).max() < 0.01
    assert out.dtype == combed.dtype and out.shape == combed.shape and 0 <= out.min() and out.max() <= 1


def test_a_photograph_without_a_comb_is_returned_untouched() -> None:
    img = _fundus_like(np.random.default_rng(1))
    out, excess = deinterlace(img)
    assert excess <= THRESHOLD
    assert out is img


def test_a_column_comb_is_not_mistaken_for_a_row_comb() -> None:
    img = _fundus_like(np.random.default_rng(2))
    cols = np.ascontiguousarray(np.swapaxes(_comb(np.swapaxes(img, 0, 1)), 0, 1))
    out, excess = deinterlace(cols)
    assert excess < 1.0 and out is cols


def test_the_training_pool_deinterlaces_only_when_asked(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    h = w = 256
    yy, xx = np.mgrid[0:h, 0:w]
    disc = ((yy - h / 2) ** 2 + (xx - w / 2) ** 2) < (0.47 * h) ** 2
    img = _comb(_fundus_like(rng, h, w)) * disc[..., None]
    write_image(tmp_path / "combed.png", img.astype(np.float32))
    (plain,), _ = load_pool([str(tmp_path)], max_side=256)
    (fixed,), _ = load_pool([str(tmp_path)], max_side=256, deinterlace=True)
    assert row_comb_gain(plain.float())[0] > THRESHOLD
    assert row_comb_gain(fixed.float())[0] < 1.2
    assert np.abs(fixed.float() - plain.float()).mean() < 0.02


def test_row_comb_amplitude_is_in_grey_levels_and_blind_to_isotropic_texture() -> None:
    from ftrt.interlace import row_comb_amplitude

    img = _fundus_like(np.random.default_rng(4))
    assert row_comb_amplitude(img) < 0.5  # sensor noise and one horizontal vessel: a third of a level
    rows = np.arange(img.shape[0], dtype=np.float32)
    striped = np.clip(img + (2 / 255) * np.sin(2 * np.pi * rows / 3)[:, None, None], 0, 1)
    # A 2-level sine at period 3 px: most of it is finer than the sigma-1 blur, so about its RMS of 1.4 levels.
    assert 1.0 < row_comb_amplitude(striped) < 1.6
    assert row_comb_amplitude(np.ascontiguousarray(np.swapaxes(striped, 0, 1))) < 0.5  # columns are not rows
