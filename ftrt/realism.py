"""How real a synthetic degradation looks, and how visible vessels are, without a reference image.

- Fréchet distance between two sets of images on the readability classifier's pooled
  backbone features (a fundus-trained network: ftrt ships no ImageNet weights), on FOV colour
  statistics (per-channel mean and standard deviation) and on spatial-frequency profiles (the
  share of the green channel's power in log-spaced radial bands). Feature-space distances from
  small sets are biased upwards: compare sets of equal size only.
- Vessel visibility: Frangi vesselness of the green channel, standardised inside the FOV (so a
  pure brightness/contrast change scores the same) with a fixed ``gamma`` (skimage's default
  rescales per image, which hides blur), inside the FOV eroded by 4 % (the FOV rim is a ridge
  too). ``vessel_contrast`` is the mean response of the strongest 12 % of FOV pixels (DRIVE's
  vessel share): blur lowers it, haze alone does not; ``false_vessel_rate`` counts pixels that
  look like vessel where a ground-truth vessel map has none (noise and invented vessels).

Needs torch (features) and scikit-image (Frangi): the ``train`` and ``dev`` extras.
"""

from __future__ import annotations

from typing import Any, Sequence

import cv2
import numpy as np

from ftrt.runtime.readability import square_fov_crop, square_to_input

VESSEL_SHARE = 0.12
BANDS = 8


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(Sa + Sb - 2 (Sa Sb)^1/2) between two (N, D) sample sets."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mu = a.mean(0) - b.mean(0)
    sa, sb = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    # Tr((Sa Sb)^1/2) = sum sqrt(eig(Sa^1/2 Sb Sa^1/2)), a symmetric PSD product: stable with eigh.
    w, v = np.linalg.eigh(sa)
    root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root @ sb @ root), 0, None)).sum()
    return float(mu @ mu + np.trace(sa) + np.trace(sb) - 2 * cross)


def colour_features(img: np.ndarray) -> np.ndarray:
    inside = img.max(axis=2) > 0.02
    px = img[inside] if inside.sum() > 16 else img.reshape(-1, 3)
    return np.concatenate([px.mean(0), px.std(0)])


def frequency_features(img: np.ndarray, side: int = 256) -> np.ndarray:
    """Share of the green channel's (FOV-square, mean-removed) power in ``BANDS`` log-spaced radial bands."""
    sq = cv2.resize(square_fov_crop(img)[0], (side, side), interpolation=cv2.INTER_AREA)[..., 1]
    inside = sq > 0.02
    # A soft window inside the FOV: its hard rim would otherwise put broad-band power into every band.
    taper = cv2.GaussianBlur(inner_fov(inside).astype(np.float32), (0, 0), side / 64)
    g = (sq - (sq[inside].mean() if inside.any() else 0.0)) * taper
    power = np.abs(np.fft.fftshift(np.fft.fft2(g))) ** 2
    yy, xx = np.indices(power.shape)
    r = np.hypot(yy - side / 2, xx - side / 2)
    edges = np.geomspace(1.0, side / 2, BANDS + 1)
    bands = np.array([power[(r >= lo) & (r < hi)].sum() for lo, hi in zip(edges[:-1], edges[1:])])
    return np.log10(bands / max(bands.sum(), 1e-12) + 1e-12)


def fundus_features(images: Sequence[np.ndarray], model_ref: str = "readability") -> np.ndarray:
    """Pooled final-stage features of the readability backbone, one row per image."""
    import torch

    from ftrt.models.pretrained import load_model

    net, _ = load_model(model_ref)
    rows = []
    with torch.no_grad():
        for img in images:
            x = torch.from_numpy(square_to_input(square_fov_crop(img)[0], net.input_side))[None]
            rows.append(net.features(x)[-1].mean(dim=(2, 3))[0].numpy())
    return np.stack(rows)


def realism(synthetic: Sequence[np.ndarray], real: Sequence[np.ndarray], real_features: np.ndarray | None = None,
            model_ref: str = "readability") -> dict[str, float]:
    """Distances of a synthetic set to a real one (lower = more like the real images)."""
    rf = fundus_features(real, model_ref) if real_features is None else real_features
    return {
        "fd_features": frechet_distance(fundus_features(synthetic, model_ref), rf),
        "fd_colour": frechet_distance(np.stack([colour_features(i) for i in synthetic]),
                                      np.stack([colour_features(i) for i in real])),
        "fd_frequency": frechet_distance(np.stack([frequency_features(i) for i in synthetic]),
                                         np.stack([frequency_features(i) for i in real])),
    }


def inner_fov(mask: np.ndarray) -> np.ndarray:
    k = max(3, round(0.04 * max(mask.shape)))
    return cv2.erode(mask.astype(np.uint8), np.ones((k, k), np.uint8)).astype(bool)


def vesselness(img: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Frangi response (dark ridges) of the green channel, zero outside the inner FOV; computed at a
    512 px FOV so the sigmas mean the same on every camera."""
    from skimage.filters import frangi

    h, w = mask.shape
    s = 512 / max(h, w)
    size = (max(32, round(w * s)), max(32, round(h * s)))
    g = cv2.resize(img[..., 1], size, interpolation=cv2.INTER_AREA)
    m = cv2.resize(inner_fov(mask).astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
    inside = g[m]
    g = (g - inside.mean()) / (inside.std() + 1e-6) if inside.size else g
    v = np.where(m, frangi(g, sigmas=(1.0, 1.5, 2.0), black_ridges=True, gamma=0.15), 0.0)
    return cv2.resize(v.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)


def vessel_contrast(img: np.ndarray, mask: np.ndarray) -> float:
    v = vesselness(img, mask)[inner_fov(mask)]
    if v.size < 100:
        return float("nan")
    return float(v[v >= np.quantile(v, 1 - VESSEL_SHARE)].mean())


def false_vessel_rate(img: np.ndarray, clean: np.ndarray, vessels: np.ndarray, mask: np.ndarray) -> float:
    """Share of FOV pixels away from true vessels (ground truth dilated by 3 px) whose vesselness exceeds the
    clean image's vessel threshold (its top ``VESSEL_SHARE`` of FOV responses)."""
    m = inner_fov(mask)
    vc = vesselness(clean, mask)
    t = np.quantile(vc[m], 1 - VESSEL_SHARE)
    away = m & ~cv2.dilate(vessels.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    return float((vesselness(img, mask)[away] > t).mean())


def summarise(values: Sequence[float]) -> dict[str, Any]:
    a = np.asarray([v for v in values if np.isfinite(v)], np.float64)
    return {"mean": float(a.mean()) if a.size else float("nan"), "n": int(a.size)}
