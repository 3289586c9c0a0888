"""Realism distances and vessel measures on real computations (numpy, Frangi)."""

from __future__ import annotations

import numpy as np
import pytest

from ftrt.realism import (
    colour_features,
    false_vessel_rate,
    frechet_distance,
    frequency_features,
    vessel_contrast,
)


def test_frechet_distance_known_values() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 3))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    b = rng.normal(size=(4000, 3)) + np.array([2.0, 0, 0])
    assert frechet_distance(a, b) == pytest.approx(4.0, abs=0.3)  # mean shift only: |mu|^2
    c = rng.normal(size=(4000, 3)) * 2.0
    # Same mean, std 1 vs 2 in 3 dims: 3 * (1 + 4 - 2 * 2) = 3
    assert frechet_distance(a, c) == pytest.approx(3.0, abs=0.3)


def test_haze_and_blur_move_colour_and_frequency_features(retina: np.ndarray) -> None:
    import cv2

    hazy = np.where(retina.max(2, keepdims=True) > 0.03, 0.5 * retina + 0.3, 0).astype(np.float32)
    blurred = cv2.GaussianBlur(retina, (0, 0), 3)
    assert np.abs(colour_features(hazy) - colour_features(retina)).max() > 0.05
    f0, fb = frequency_features(retina), frequency_features(blurred)
    assert fb[-1] < f0[-1] - 0.5  # the highest band loses power under blur


def test_vessel_measures(retina: np.ndarray) -> None:
    import cv2

    from ftrt.fov import fov_mask

    mask = fov_mask(retina)
    blurred = cv2.GaussianBlur(retina, (0, 0), 2.5) * mask[..., None]
    hazy = (0.5 * retina + 0.3) * mask[..., None]
    assert vessel_contrast(retina, mask) > 2 * vessel_contrast(blurred, mask)  # blur hides vessels
    assert vessel_contrast(hazy, mask) == pytest.approx(vessel_contrast(retina, mask), rel=0.05)  # haze alone not
    # Lines drawn where the (empty) vessel map says there are none count as false vessels.
    vessels = np.zeros(mask.shape, bool)
    fake = retina.copy()
    for y in range(40, 220, 20):
        cv2.line(fake, (60, y), (200, y + 10), (0.05, 0.05, 0.05), 2)
    assert false_vessel_rate(fake, retina, vessels, mask) > false_vessel_rate(retina, retina, vessels, mask)
