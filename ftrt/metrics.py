"""PSNR and SSIM restricted to the field of view (numpy + OpenCV, no torch)."""

from __future__ import annotations

import math

import cv2
import numpy as np


def psnr(pred: np.ndarray, ref: np.ndarray, mask: np.ndarray | None = None, data_range: float = 1.0) -> float:
    """PSNR in dB over the pixels of ``mask`` (all channels); inf for identical images."""
    _check_pair(pred, ref)
    diff = (pred.astype(np.float64) - ref.astype(np.float64)) ** 2
    if mask is not None:
        diff = diff[mask]
    mse = float(diff.mean())
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(data_range**2 / mse)


def structure_psnr(pred: np.ndarray, ref: np.ndarray, mask: np.ndarray, data_range: float = 1.0) -> float:
    """PSNR after moving each channel of ``pred`` to ``ref``'s mean over ``mask``: the error a restorer makes in
    structure and local contrast, without the photograph's global colour (which a restorer trained to keep
    the input's brightness does not try to guess; plain PSNR is dominated by it)."""
    m = mask.astype(bool)
    shift = ref[m].mean(axis=0) - pred[m].mean(axis=0)
    return psnr(pred + shift * m[..., None], ref, m, data_range)


def ssim_map(pred: np.ndarray, ref: np.ndarray, data_range: float = 1.0, sigma: float = 1.5) -> np.ndarray:
    """Per-pixel SSIM (Wang et al. 2004: Gaussian window sigma 1.5, K1=0.01, K2=0.03), channel mean."""
    _check_pair(pred, ref)
    x = pred.astype(np.float64)
    y = ref.astype(np.float64)
    if x.ndim == 2:
        x, y = x[..., None], y[..., None]
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    # 11x11 window as in the paper (radius 3.5 sigma rounded), reflect borders like skimage.
    k = 2 * int(3.5 * sigma + 0.5) + 1

    def blur(a: np.ndarray) -> np.ndarray:
        out = cv2.GaussianBlur(a, (k, k), sigma, borderType=cv2.BORDER_REFLECT)
        return out.reshape(a.shape)

    mx, my = blur(x), blur(y)
    sxx = blur(x * x) - mx * mx
    syy = blur(y * y) - my * my
    sxy = blur(x * y) - mx * my
    num = (2 * mx * my + c1) * (2 * sxy + c2)
    den = (mx * mx + my * my + c1) * (sxx + syy + c2)
    return (num / den).mean(axis=2)


def ssim(pred: np.ndarray, ref: np.ndarray, mask: np.ndarray | None = None, data_range: float = 1.0) -> float:
    """Mean SSIM over the pixels of ``mask``."""
    smap = ssim_map(pred, ref, data_range)
    return float(smap[mask].mean() if mask is not None else smap.mean())


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two boolean maps (0 when both are empty)."""
    return float(2 * (a & b).sum() / max(1, a.sum() + b.sum()))


def _check_pair(pred: np.ndarray, ref: np.ndarray) -> None:
    if pred.shape != ref.shape:
        raise ValueError(f"shape mismatch: prediction {pred.shape} vs reference {ref.shape}")


# ---------------------------------------------------------------- binary classification
def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve (Mann-Whitney U with mid-ranks for ties); None with one class only."""
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), np.float64)
    sorted_s = s[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def binary_report(labels: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> dict[str, object]:
    """n, accuracy, balanced accuracy, AUC and the confusion matrix [[tn, fp], [fn, tp]] at ``threshold``."""
    y = np.asarray(labels).astype(bool)
    pred = np.asarray(scores) >= threshold
    tp, tn = int(np.sum(pred & y)), int(np.sum(~pred & ~y))
    fp, fn = int(np.sum(pred & ~y)), int(np.sum(~pred & y))
    rates = [r for r in (tp / (tp + fn) if tp + fn else None, tn / (tn + fp) if tn + fp else None) if r is not None]
    return {
        "n": int(y.size), "positives": int(y.sum()),
        "accuracy": float((tp + tn) / y.size) if y.size else None,
        "balanced_accuracy": float(np.mean(rates)) if rates else None,
        "auc": roc_auc(y, scores),
        "confusion": [[tn, fp], [fn, tp]],
    }
