"""Classical enhancement anchors that any learned restorer must beat.

- CLAHE on the LAB lightness channel (Setiawan et al. 2013, colour retinal image enhancement).
- Dark channel prior dehazing (He, Sun and Tang, CVPR 2009 / TPAMI 2011) with a guided-filter
  refined transmission (He et al., ECCV 2010).
Both work on float RGB in [0, 1] with sizes relative to the image.
"""

from __future__ import annotations

import cv2
import numpy as np

from ftrt.fov import fov_mask

METHODS = ("clahe", "dcp")


def clahe(img: np.ndarray, clip_limit: float = 2.0, tiles: int = 8) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation of L* only, so hue is kept."""
    u8 = np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)
    lab = cv2.cvtColor(u8, cv2.COLOR_RGB2LAB)
    op = cv2.createCLAHE(clipLimit=clip_limit, tileGridSize=(tiles, tiles))
    lab[:, :, 0] = op.apply(lab[:, :, 0])
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB).astype(np.float32) / 255.0


def dark_channel(img: np.ndarray, patch: int) -> np.ndarray:
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (patch, patch))
    return cv2.erode(img.min(axis=2), kernel)


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """Grey-guide guided filter (box filters only, O(N) in the radius)."""
    size = (2 * radius + 1, 2 * radius + 1)

    def box(a: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(a, -1, size, borderType=cv2.BORDER_REFLECT)

    mean_i, mean_p = box(guide), box(src)
    cov_ip = box(guide * src) - mean_i * mean_p
    var_i = box(guide * guide) - mean_i * mean_i
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return box(a) * guide + box(b)


def dcp(img: np.ndarray, omega: float = 0.95, t0: float = 0.1, mask: np.ndarray | None = None) -> np.ndarray:
    """Dark-channel-prior dehazing; the black FOV surround is excluded from the airlight estimate."""
    img = np.ascontiguousarray(img, dtype=np.float32)
    if mask is None:
        mask = fov_mask(img)
    side = min(img.shape[:2])
    # He et al. use a 15 px patch on ~600 px images: keep that ratio.
    patch = max(3, int(round(15 * side / 600)) | 1)
    dark = dark_channel(img, patch)
    inside = dark[mask] if mask.any() else dark.ravel()
    pixels = img[mask] if mask.any() else img.reshape(-1, 3)
    n_top = max(1, int(0.001 * inside.size))
    top = np.argpartition(inside, -n_top)[-n_top:]
    airlight = np.maximum(pixels[top].max(axis=0), 1e-3)
    t = 1.0 - omega * dark_channel(img / airlight, patch)
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    t = guided_filter(grey, t.astype(np.float32), radius=max(4, 4 * patch), eps=1e-3)
    t = np.maximum(t, t0)[..., None]
    out = (img - airlight) / t + airlight
    return np.clip(out, 0.0, 1.0) * mask[..., None]


def enhance(img: np.ndarray, method: str) -> np.ndarray:
    if method == "clahe":
        mask = fov_mask(img)
        return clahe(img) * mask[..., None]
    if method == "dcp":
        return dcp(img)
    raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
