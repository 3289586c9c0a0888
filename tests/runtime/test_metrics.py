from __future__ import annotations

import math

import numpy as np
from skimage.metrics import structural_similarity

from ftrt.metrics import dice, psnr, ssim, ssim_map


def test_psnr_hand_computed() -> None:
    ref = np.full((10, 10, 3), 0.5, np.float32)
    pred = ref.copy()
    pred[:5] += 0.1  # half the pixels off by 0.1: MSE = 0.005 -> 10*log10(1/0.005) = 23.0103 dB
    assert math.isclose(psnr(pred, ref), 10 * math.log10(1 / 0.005), abs_tol=1e-4)
    assert math.isclose(psnr(pred, ref), 23.0103, abs_tol=1e-4)


def test_psnr_counts_only_the_mask() -> None:
    ref = np.zeros((8, 8, 3), np.float32)
    pred = ref.copy()
    pred[:, 4:] = 1.0  # wrong outside the mask only
    mask = np.zeros((8, 8), bool)
    mask[:, :4] = True
    assert psnr(pred, ref, mask) == math.inf
    pred[0, 0] = 0.1  # one of 8x4 = 32 masked pixels, all 3 channels: MSE = 0.01/32 -> 35.051 dB
    assert math.isclose(psnr(pred, ref, mask), 10 * math.log10(32 / 0.01), abs_tol=1e-6)
    assert math.isclose(psnr(pred, ref, mask), 35.0515, abs_tol=1e-4)


def test_ssim_matches_scikit_image(retina: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    noisy = np.clip(retina + rng.normal(0, 0.05, retina.shape), 0, 1).astype(np.float32)
    _, full = structural_similarity(noisy, retina, channel_axis=2, gaussian_weights=True, sigma=1.5,
                                    use_sample_covariance=False, data_range=1.0, full=True)
    ours = ssim_map(noisy, retina)
    # skimage's border differs (it crops half a window); the interior must agree.
    assert np.abs(full.mean(axis=2) - ours)[5:-5, 5:-5].max() < 1e-3
    assert ssim(retina, retina) == 1.0


def test_dice_of_boolean_maps() -> None:
    a = np.zeros((4, 4), bool)
    a[1] = True
    b = a.copy()
    b[2] = True
    assert dice(a, a) == 1.0 and math.isclose(dice(a, b), 2 / 3) and dice(a & False, b & False) == 0.0
