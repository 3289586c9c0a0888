"""The README figure from `make demo`'s outputs: original | degraded | CLAHE | restored, labelled.

    python tools/demo_figure.py [DEMO_DIR] [OUT.png]      (defaults: demo, docs/images/before_after.png)
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from ftrt.enhance import enhance
from ftrt.io import read_image, write_image

SIDE = 384


def panel(img: np.ndarray, label: str) -> np.ndarray:
    out = cv2.resize(np.clip(img, 0, 1), (SIDE, SIDE), interpolation=cv2.INTER_AREA)
    out8 = np.ascontiguousarray((out * 255 + 0.5).astype(np.uint8))
    cv2.putText(out8, label, (10, 26), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2, cv2.LINE_AA)
    return out8.astype(np.float32) / 255


def main() -> int:
    demo = Path(sys.argv[1] if len(sys.argv) > 1 else "demo")
    out = Path(sys.argv[2] if len(sys.argv) > 2 else "docs/images/before_after.png")
    original = read_image(demo / "sample" / "retina.png")[0]
    degraded = read_image(demo / "degraded" / "retina.png")[0]
    restored = read_image(demo / "restored" / "retina.png")[0]
    row = [panel(original, "original"), panel(degraded, "degraded"), panel(enhance(degraded, "clahe"), "CLAHE"),
           panel(restored, "ftrt restore")]
    print(write_image(out, np.concatenate(row, axis=1)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
