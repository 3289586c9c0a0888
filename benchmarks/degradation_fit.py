"""How real the degradations look: distances from degraded good photographs to real low-quality ones.

    python benchmarks/degradation_fit.py [--data ../shared/data] [--n 40] [--draws 1]
        [--out benchmarks/results/degradation_fit.md]

Good photographs (DRIVE training, DRIMDB Good) are degraded by each candidate; each set is compared with
real low-quality sets (CSDI cataract, validation split only; DRIMDB Bad; ODIR cataract) by ftrt.realism's
Fréchet distances: readability-backbone features, FOV colour statistics and spatial-frequency profiles
(lower = more like the real photographs; sets of equal size). The candidates are the old training recipe
(`mixed`), the published models (`cofe`, `cataract`), the physical families as shipped (`real`) and the
same families with the veil's transmission range moved (the choice the fit made), the third fit (a veil
thicker on one side, defocus more often) and the draws training runs took. The undegraded good
photographs are the reference row: a degradation worth training on moves a set towards the real ones.

With ``--draws K`` every candidate degrades the same photographs K times (draw 0 is the single draw's
seeds) and each cell gives the median and the range: at 24 photographs two draws of one distribution can
differ more than two candidates do (the uneven veil's colour distance to CSDI is 0.035 in one draw and 0.062 in
another; the shipped families' 0.034-0.038), so a single draw ranks little.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import cpu_name, invocation, write_report  # noqa: E402

from ftrt.degrade import degrade  # noqa: E402
from ftrt.degrade import physical  # noqa: E402
from ftrt.fov import fov_mask  # noqa: E402
from ftrt.io import collect_inputs, read_image  # noqa: E402
from ftrt.realism import fundus_features, realism  # noqa: E402
from ftrt.training.data import heldout_by_name  # noqa: E402

SIDE = 512
UNEVEN = {"veil.t_var": [0.0, 0.45]}
STAGE9 = {"veil": 0.9, "motion": 0.3}  # configs/res-s-veil2.yaml


@dataclass
class Candidate:
    name: str
    make: Callable[[np.ndarray, np.ndarray, np.random.Generator], np.ndarray]


def load(paths: list[Path], n: int) -> list[np.ndarray]:
    out = []
    for p in paths[:n]:
        img, _ = read_image(p)
        s = SIDE / max(img.shape[:2])
        img = cv2.resize(img, (round(img.shape[1] * s), round(img.shape[0] * s)), interpolation=cv2.INTER_AREA)
        out.append(img * fov_mask(img)[..., None])
    return out


def with_veil(t_lo: float, t_hi: float) -> Callable[[np.ndarray, np.ndarray, np.random.Generator], np.ndarray]:
    """The physical families with the veil's transmission drawn from [t_lo, t_hi] instead."""

    def make(img: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        p = physical.sample_physical(rng, img.shape[:2])
        if "veil" in p:
            p["veil"]["t"] = float(np.random.default_rng(int(rng.integers(2**31))).uniform(t_lo, t_hi))
        return physical.apply_physical(img, mask, p)

    return make


def cell(values: list[float], digits: int) -> str:
    """One draw as it is; several as median (lowest-highest)."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{float(np.median(values)):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--draws", type=int, default=1, help="degrade the good photographs this many times")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "degradation_fit.md"))
    a = ap.parse_args()
    data = Path(a.data)
    good = load(sorted(collect_inputs([str(data / "drive" / "training" / "images")]))
                + sorted(collect_inputs([str(data / "drimdb" / "Good")])), a.n)
    csdi = sorted(collect_inputs([str(data / "csdi" / "images_1024")]))
    _, csdi_val = heldout_by_name(csdi, 0.3, salt="csdi-val")
    reals = {
        "CSDI cataract (val split)": load(csdi_val, a.n),
        "DRIMDB Bad": load(sorted(collect_inputs([str(data / "drimdb" / "Bad")])), a.n),
        "ODIR cataract": load(sorted(collect_inputs([str(data / "odir_eyedisease" / "cataract")])), a.n),
    }
    real_feats = {k: fundus_features(v) for k, v in reals.items()}
    cands = [Candidate("none (good photographs as they are)", lambda img, m, r: img)]
    cands += [Candidate(k, lambda img, m, r, k=k: degrade(img, k, r, mask=m)[0]) for k in ("mixed", "cofe", "cataract")]
    cands += [Candidate("real (shipped: veil t 0.50-0.90)", lambda img, m, r: degrade(img, "real", r, mask=m)[0]),
              Candidate("real, veil t 0.35-0.85 (first draft)", with_veil(0.35, 0.85)),
              Candidate("real, veil t 0.65-0.95 (lighter)", with_veil(0.65, 0.95))]
    # The third fit: a veil thicker on one side (t_var 0-0.45, shipped 0-0.2) and defocus more often, then the
    # draws two training runs actually took (their family_probability / family_ranges).
    cands += [Candidate(name, lambda img, m, r, odds=odds, ranges=ranges:
                        degrade(img, "real", r, mask=m, probability=odds, ranges=ranges)[0])
              for name, odds, ranges in (
                  ("real, uneven veil (t_var 0-0.45)", {}, UNEVEN),
                  ("real, uneven veil + defocus 0.6", {"defocus": 0.6}, UNEVEN),
                  ("stage 9's training draw (veil 0.9, motion 0.3)", STAGE9, {}),
                  ("stage 10's training draw (stage 9's + uneven veil, defocus 0.6)", {**STAGE9, "defocus": 0.6},
                   UNEVEN))]
    rows: list[dict[str, Any]] = []
    for c in cands:
        per_draw: dict[str, list[dict[str, float]]] = {k: [] for k in reals}
        for d in range(a.draws):
            synth = [c.make(img, fov_mask(img), np.random.default_rng([1 + d, i])) for i, img in enumerate(good)]
            for k, v in reals.items():
                per_draw[k].append(realism(synth, v, real_feats[k]))
        for k, draws in per_draw.items():
            rows.append({"candidate": c.name, "real": k,
                         **{m: [r[m] for r in draws] for m in ("fd_features", "fd_colour", "fd_frequency")}})
        print(c.name, "done", file=sys.stderr, flush=True)
    lines = ["# Degradations against real low-quality photographs", "",
             f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} by `{invocation()}` on {cpu_name()}.",
             f"{len(good)} good photographs (DRIVE training, DRIMDB Good) at {SIDE} px, each set of real photographs "
             f"{a.n} or fewer; Fréchet distances of ftrt.realism (lower = closer to the real set)"
             + (f"; median (lowest-highest) of {a.draws} draws of each degradation." if a.draws > 1 else "."), ""]
    for k in reals:
        lines += [f"## vs {k}", "", "| degradation | features | colour | frequency |", "|---|---:|---:|---:|"]
        for r in rows:
            if r["real"] == k:
                lines.append(f"| {r['candidate']} | {cell(r['fd_features'], 2)} | {cell(r['fd_colour'], 4)} | "
                             f"{cell(r['fd_frequency'], 3)} |")
        lines.append("")
    write_report(a.out, lines)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
