"""The data splits of the adaptation study (benchmarks/adaptation.py), from ``../shared/data``.

Real cataract photographs: CSDI with severity >= 3 (mild and worse) and ODIR's cataract
class. A quarter of each, chosen by a hash of the file name, is held out: never seen by
the Syn generator nor by the mean teacher, and used for the realism distances and the
no-reference comparison.
"""

from __future__ import annotations

import csv
from pathlib import Path

from ftrt.training.data import heldout_by_name

HELD_OUT = 0.25
MIN_SEVERITY = 3.0


def good_images(root: Path) -> list[Path]:
    """What the shipped res-s trained on: DRIVE training, ODIR normal, DRIMDB Good."""
    return (sorted((root / "drive/training/images").glob("*.tif"))
            + sorted((root / "odir_eyedisease/normal").glob("*.jpg"))
            + sorted((root / "drimdb/Good").glob("*.jpg")))


def csdi_cataract(root: Path) -> list[Path]:
    index = {r["id"]: r["file"] for r in csv.DictReader((root / "csdi/resize_index.csv").open())}
    rows = csv.DictReader((root / "csdi/CSDI_annotations.csv").open())
    return sorted(root / "csdi" / index[r["id"]] for r in rows
                  if r["id"] in index and float(r["score"]) >= MIN_SEVERITY)


def cataract_split(root: Path) -> dict[str, list[Path]]:
    csdi_train, csdi_eval = heldout_by_name(csdi_cataract(root), HELD_OUT)
    odir_train, odir_eval = heldout_by_name(sorted((root / "odir_eyedisease/cataract").glob("*.jpg")), HELD_OUT)
    return {"train": csdi_train + odir_train, "eval_csdi": csdi_eval, "eval_odir": odir_eval}
