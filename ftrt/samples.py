"""Sample fundus photographs that ship with packages (nothing is downloaded)."""

from __future__ import annotations

import numpy as np


def retina(size: int | None = 512) -> np.ndarray:
    """The CC0 fundus photograph shipped with scikit-image (1411x1411), float RGB [0, 1]."""
    try:
        from skimage import data
    except ImportError as exc:
        raise RuntimeError("the sample photograph comes with scikit-image: pip install scikit-image") from exc
    import cv2

    img = data.retina().astype(np.float32) / 255.0
    if size:
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    return img
