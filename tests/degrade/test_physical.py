"""The physical degradation families: each acts in its own cause's direction, reproducibly, inside the FOV."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ftrt.degrade import degrade
from ftrt.degrade.physical import FAMILIES, REFERENCE_SIDE, apply_physical, sample_physical
from ftrt.fov import fov_mask


@pytest.fixture(scope="module")
def photo(retina: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mask = fov_mask(retina)
    return (retina * mask[..., None]).astype(np.float32), mask


def one(photo: tuple[np.ndarray, np.ndarray], family: str, seed: int = 0) -> np.ndarray:
    img, mask = photo
    p = sample_physical(np.random.default_rng(seed), img.shape[:2], only=family)
    return apply_physical(img, mask, p)


def sharpness(img: np.ndarray, mask: np.ndarray) -> float:
    inside = cv2.erode(mask.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    return float(cv2.Laplacian(img[..., 1], cv2.CV_32F)[inside].var())


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_is_reproducible_in_range_and_black_outside(photo, family: str) -> None:
    img, mask = photo
    a, b = one(photo, family), one(photo, family)
    assert a.dtype == np.float32 and a.shape == img.shape
    np.testing.assert_array_equal(a, b)
    assert a.min() >= 0 and a.max() <= 1 and not a[~mask].any()


@pytest.mark.parametrize("seed", range(4))
def test_each_cause_acts_in_its_own_direction(photo, seed: int) -> None:
    img, mask = photo
    y = lambda im: float((im @ np.array([0.299, 0.587, 0.114], np.float32))[mask].mean())  # noqa: E731
    rms = lambda im: float((im @ np.array([0.299, 0.587, 0.114], np.float32))[mask].std())  # noqa: E731
    veil = one(photo, "veil", seed)
    assert rms(veil) < rms(img) and y(veil) > y(img) - 0.02  # light added, contrast lost
    for blur in ("defocus", "blur", "motion"):
        assert sharpness(one(photo, blur, seed), mask) < 0.8 * sharpness(img, mask)
    assert (one(photo, "reflection", seed) >= img - 1e-6).all()  # stray light only adds
    assert (one(photo, "vignette", seed) <= img + 1e-6).all()  # a small pupil only darkens


def test_restricted_families_are_never_drawn(photo) -> None:
    img, _ = photo
    allowed = ("veil", "defocus", "noise")
    for seed in range(40):
        p = sample_physical(np.random.default_rng(seed), img.shape[:2], families=allowed)
        assert p["families"] and set(p["families"]) <= set(allowed)
    with pytest.raises(ValueError, match="unknown degradation families"):
        sample_physical(np.random.default_rng(0), img.shape[:2], families=("haemorrhage",))


def test_kind_real_through_the_api_records_every_parameter(photo) -> None:
    img, mask = photo
    out, params = degrade(img, "real", np.random.default_rng(5), mask=mask)
    again, _ = degrade(img, "real", np.random.default_rng(5), mask=mask)
    np.testing.assert_array_equal(out, again)
    assert params["steps"] == ["real"] and params["real"]["families"]
    assert all(k in params["real"] for k in params["real"]["families"])


def test_family_probability_overrides_how_often_a_family_is_drawn(photo) -> None:
    img, mask = photo
    shape = img.shape[:2]
    for seed in range(30):
        assert "veil" in sample_physical(np.random.default_rng(seed), shape, probability={"veil": 1.0})["families"]
        assert "veil" not in sample_physical(np.random.default_rng(seed), shape, probability={"veil": 0.0})["families"]
        # No override draws exactly as before the option existed (the same photographs for old configs).
        assert sample_physical(np.random.default_rng(seed), shape, probability={}) == \
            sample_physical(np.random.default_rng(seed), shape)
    _, params = degrade(img, "real", np.random.default_rng(3), mask=mask, probability={"veil": 1.0})
    assert "veil" in params["real"]["families"]
    with pytest.raises(ValueError, match="unknown degradation families"):
        sample_physical(np.random.default_rng(0), shape, probability={"haemorrhage": 0.5})
    with pytest.raises(ValueError, match="0-1"):
        sample_physical(np.random.default_rng(0), shape, probability={"veil": 1.5})
    with pytest.raises(ValueError, match="kind 'real'"):
        degrade(img, "cofe", np.random.default_rng(0), mask=mask, probability={"veil": 1.0})


def test_family_ranges_redraw_parameters_and_scale_sizes_with_the_photograph(photo) -> None:
    img, mask = photo
    shape = img.shape[:2]
    scale = min(shape) / REFERENCE_SIDE
    ranges = {"veil.t_var": [0.3, 0.45], "veil.scatter_sigma": [2.0, 2.0], "veil.cx": [-0.1, -0.1]}
    for seed in range(20):
        base = sample_physical(np.random.default_rng(seed), shape, only="veil")["veil"]
        p = sample_physical(np.random.default_rng(seed), shape, only="veil", ranges=ranges)["veil"]
        assert 0.3 <= p["t_var"] <= 0.45
        assert p["scatter_sigma"] == pytest.approx(2.0 * scale, rel=1e-5)  # a size: given at the reference side
        assert p["cx"] == pytest.approx(-0.1)  # an offset may be negative
        # Only the named parameters move; the rest is the draw a run without ranges gets.
        assert {k: v for k, v in p.items() if k not in ("t_var", "scatter_sigma", "cx")} == \
            {k: v for k, v in base.items() if k not in ("t_var", "scatter_sigma", "cx")}
        # No ranges draws exactly as before the option existed, and a family not drawn is not touched.
        assert sample_physical(np.random.default_rng(seed), shape, ranges={}) == \
            sample_physical(np.random.default_rng(seed), shape)
        assert "veil" not in sample_physical(np.random.default_rng(seed), shape, probability={"veil": 0.0},
                                             ranges=ranges)
    # A thicker veil on one side is what the range is for: the FOV's contrast varies more across it.
    thin = apply_physical(img, mask, sample_physical(np.random.default_rng(1), shape, only="veil",
                                                     ranges={"veil.t_var": [0.0, 0.0], "veil.t": [0.7, 0.7]}))
    uneven = apply_physical(img, mask, sample_physical(np.random.default_rng(1), shape, only="veil",
                                                       ranges={"veil.t_var": [0.45, 0.45], "veil.t": [0.7, 0.7]}))
    inside = cv2.erode(mask.astype(np.uint8), np.ones((25, 25), np.uint8)).astype(bool)
    assert np.std(cv2.blur(uneven[..., 1], (41, 41))[inside]) > np.std(cv2.blur(thin[..., 1], (41, 41))[inside])
    _, params = degrade(img, "real", np.random.default_rng(3), mask=mask, probability={"veil": 1.0},
                        ranges={"veil.t": [0.6, 0.6]})
    assert params["real"]["veil"]["t"] == pytest.approx(0.6)
    for bad, match in [({"fog.t": [0, 1]}, "unknown family"), ({"veil.seed": [0, 1]}, "no continuous parameter"),
                       ({"illumination.grid": [3, 4]}, "no continuous parameter"),
                       ({"veil.t": [0.9, 0.5]}, "low <= high"), ({"veil.t": "x"}, r"\[low, high\]"),
                       ({"defocus.radius": [-1.0, 2.0]}, "0 <= low"), ({"veil.t": [0.5, float("nan")]}, "low <= high")]:
        with pytest.raises(ValueError, match=match):
            sample_physical(np.random.default_rng(0), shape, ranges=bad)
    with pytest.raises(ValueError, match="kind 'real'"):
        degrade(img, "cataract", np.random.default_rng(0), mask=mask, ranges={"veil.t": [0.6, 0.6]})


def test_gaussian_blur_is_off_by_default_and_acts_with_the_optics(photo) -> None:
    img, mask = photo
    shape = img.shape[:2]
    for seed in range(40):
        # Off by default: never drawn, and it takes no random draw, so the default draw is what it always was.
        assert "blur" not in sample_physical(np.random.default_rng(seed), shape)["families"]
        p = sample_physical(np.random.default_rng(seed), shape, probability={"blur": 1.0, "defocus": 1.0,
                                                                             "motion": 1.0})
        fams = p["families"]
        assert fams.index("defocus") < fams.index("blur") < fams.index("motion")  # the optics, in light's order
    blurred = one(photo, "blur", 3)
    assert sharpness(blurred, mask) < 0.8 * sharpness(img, mask)
    assert abs(float(blurred[mask].mean()) - float(img[mask].mean())) < 0.01  # blur moves no light
