"""``ftrt evaluate``: full-reference quality of restored images inside the field of view."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ftrt.fov import fov_mask
from ftrt.io import ImageReadError, collect_inputs, read_image
from ftrt.metrics import psnr, ssim


def _by_stem(folder: str | Path) -> dict[str, Path]:
    return {p.stem: p for p in collect_inputs([str(folder)], suffixes=(".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif"))}


def _find_mask(masks: dict[str, Path], stem: str) -> Path | None:
    if stem in masks:
        return masks[stem]
    # DRIVE names masks "<id>_test_mask" for "<id>_test": accept any mask whose stem starts with the image stem.
    for k, p in masks.items():
        if k.startswith(stem):
            return p
    return None


def read_mask(path: Path) -> np.ndarray:
    import cv2

    data = np.fromfile(path, dtype=np.uint8)
    m = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)
    if m is None:
        # OpenCV has no GIF decoder in some builds; DRIVE ships its masks as GIF.
        cap = cv2.VideoCapture(str(path))
        ok, frame = cap.read()
        cap.release()
        if not ok:
            raise ImageReadError(f"{path}: not a readable mask")
        m = frame.max(axis=2)
    return m > 127


def evaluate_pair(pred: np.ndarray, ref: np.ndarray, mask: np.ndarray | None = None) -> dict[str, float]:
    """Both images are expected black outside the mask: SSIM windows at the rim would otherwise see it."""
    if mask is None:
        mask = fov_mask(ref)
    return {"psnr": psnr(pred, ref, mask), "ssim": ssim(pred, ref, mask)}


def evaluate_dirs(pred_dir: str | Path, ref_dir: str | Path, mask_dir: str | Path | None = None) -> dict[str, Any]:
    preds, refs = _by_stem(pred_dir), _by_stem(ref_dir)
    masks = _by_stem(mask_dir) if mask_dir else {}
    common = sorted(set(preds) & set(refs))
    if not common:
        raise ValueError(f"no file stems in common between {pred_dir} and {ref_dir}")
    rows: list[dict[str, Any]] = []
    errors: list[str] = []
    for stem in common:
        try:
            p, _ = read_image(preds[stem])
            r, _ = read_image(refs[stem])
            mpath = _find_mask(masks, stem) if masks else None
            m = read_mask(mpath) if mpath else fov_mask(r)
            if p.shape != r.shape:
                raise ValueError(f"{preds[stem]}: size {p.shape[:2]} differs from reference {r.shape[:2]}")
            rows.append({"name": stem, "pred": str(preds[stem]), "ref": str(refs[stem]),
                         **evaluate_pair(p * m[..., None], r * m[..., None], m), "mask": "given" if mpath else "detected"})
        except (ImageReadError, ValueError) as exc:
            errors.append(str(exc))
    mean = {k: float(np.mean([r[k] for r in rows])) if rows else float("nan") for k in ("psnr", "ssim")}
    return {"images": rows, "mean": mean, "errors": errors,
            "unpaired": sorted(set(preds) ^ set(refs))}
