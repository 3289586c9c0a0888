"""Where restorers lose vessels on the held-out Peli ``cataract`` family: Dice change by the draw's blur.

    python benchmarks/cataract_blur.py RESULTS_per_image.md:DRAW [...] [--data ../shared/data]
        [--out benchmarks/results/cataract_blur.md]

Reads the per-image rows ``benchmarks/quality.py --drive-split training`` wrote (each file with the ``--draw`` it
was run with), re-draws each photograph's Peli parameters from quality.py's own generator (``drive_rng``), and
reports, for every restorer in those files, the mean of (restored - unrestored) Dice in three bands of
the blur's width (sigma at the 512 px reference side: 0.5-1.17, 1.17-1.83, 1.83-2.5 px). No restoration is run:
it only explains figures already measured.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import invocation, write_report  # noqa: E402
from quality import drive_rng  # noqa: E402

from ftrt.degrade.cataract import sample_cataract  # noqa: E402
from ftrt.degrade.common import REFERENCE_SIDE  # noqa: E402
from ftrt.io import read_image  # noqa: E402

BANDS = ((0.5, 1.17), (1.17, 1.83), (1.83, 2.5 + 1e-6))  # thirds of sample_cataract's 0.5-2.5 px


def cataract_rows(path: Path) -> dict[tuple[str, str], float]:
    """(image, method) -> Dice of the ``cataract`` rows of a quality.py per-image file."""
    out = {}
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in line.split("|")[1:-1]]
        if len(cells) == 7 and cells[1] == "cataract":
            out[(cells[0], cells[2])] = float(cells[5])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="PER_IMAGE.md:DRAW")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "cataract_blur.md"))
    a = ap.parse_args()
    images = Path(a.data) / "drive" / "training" / "images"
    shapes: dict[str, tuple[int, int]] = {}
    # method -> band -> list of Dice changes
    changes: dict[str, list[list[float]]] = defaultdict(lambda: [[] for _ in BANDS])
    for spec in a.runs:
        file, _, draw = spec.rpartition(":")
        rows = cataract_rows(Path(file))
        for name in sorted({img for img, _ in rows}):
            if name not in shapes:
                shapes[name] = read_image(images / f"{name}.tif")[0].shape[:2]
            h, w = shapes[name]
            sigma = sample_cataract(drive_rng(name, int(draw)), (h, w))["blur_sigma"]
            ref = sigma / (min(h, w) / REFERENCE_SIDE)
            band = next(i for i, (lo, hi) in enumerate(BANDS) if lo <= ref < hi)
            for (img, method), dice in rows.items():
                if img == name and method not in ("input", "CLAHE", "DCP"):
                    changes[f"{method}, draw {draw}"][band].append(dice - rows[(name, "input")])
    head = " | ".join(f"sigma {lo:.2f}-{min(hi, 2.5):.2f}" for lo, hi in BANDS)
    lines = ["# Vessel Dice change on the Peli `cataract` family, by the blur's width", "",
             f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} by `{invocation()}` from per-image rows "
             "already measured (no restoration run here). Each cell: mean of restored minus unrestored Dice over the "
             "DRIVE training photographs whose draw fell in that band (sigma in px at the 512 px reference side; "
             "the count in brackets).", "",
             f"| restorer, draw | {head} | all |", "|---|" + "---:|" * (len(BANDS) + 1)]
    for method, bands in changes.items():
        cells = [f"{np.mean(b):+.4f} ({len(b)})" if b else "-" for b in bands]
        every = [x for b in bands for x in b]
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {np.mean(every):+.4f} ({len(every)}) |")
    write_report(a.out, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
