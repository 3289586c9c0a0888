"""Where vessels are lost: DRIVE vessel Dice under one physical degradation family at a time.

    python benchmarks/vessel_families.py [--models res-s X.onnx ...] [--split test|training] [--limit N]
                                         [--out benchmarks/results/vessel_families.md]

`benchmarks/quality.py` scores the `real` kind, several families drawn together, so it says how much of the
vessel Dice gap a restorer recovers but not which physical cause it fails to undo. Here each DRIVE photograph
is degraded by exactly one family of ``ftrt.degrade.physical`` (one draw per photograph and family, seeded by
the file name, so every run and every model sees the same pairs), restored through the `ftrt restore`
pipeline (ONNX Runtime CPU, 2 threads), and segmented by quality.py's fixed Frangi segmenter. A family that
costs the clean photograph little Dice has a small, noisy gap: read its "recovered" share with the Dice
columns beside it. Use ``--split training`` to choose between candidates and ``test`` to report.

"unrounded" is the degraded photograph before it is rounded to 8 bits (every other column is scored on 8-bit
images, as a clinic's files are): the share of a family's gap that is the rounding, not the degradation.

A second table takes quality.py's own `real` pairs (the same draw, several families together) one photograph at
a time: which families were drawn, the Dice of each method, and each photograph's share of a restorer's whole
remaining gap (clean - restored, summed over the photographs), so a recipe can aim at the combinations that hold it.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import cpu_name, drive_split_args, invocation, write_report  # noqa: E402
from quality import drive_photographs, drive_rng, methods_for, segment, to8  # noqa: E402

from ftrt import __version__  # noqa: E402
from ftrt.degrade import degrade  # noqa: E402
from ftrt.degrade.physical import FAMILIES, apply_physical, sample_physical  # noqa: E402
from ftrt.metrics import dice  # noqa: E402
from ftrt.realism import inner_fov, vesselness  # noqa: E402


Rows = list[dict[str, Any]]


def vessel_dice(img: np.ndarray, mask: np.ndarray, truth: np.ndarray) -> float:
    """quality.py's fixed segmenter on ``img``, scored against ``truth``."""
    return dice(segment(vesselness(img, mask), mask)[0], truth)


def family_dice(drive: Path, models: list[str], limit: int | None,
                log=lambda m: print(m, file=sys.stderr, flush=True)) -> tuple[dict[str, dict[str, list[float]]], Rows]:
    """({family: {method: [Dice per photograph]}}, with the clean photograph's Dice under method "clean"; one row
    per photograph for quality.py's `real` pair of it: its families and every method's Dice)."""
    methods = {k: v for k, v in methods_for(models).items() if k != "DCP"}
    out: dict[str, dict[str, list[float]]] = {f: {} for f in FAMILIES}
    combined: Rows = []
    for name, clean, mask, truth in drive_photographs(drive, limit):
        truth = truth & inner_fov(mask)
        d_clean = vessel_dice(clean, mask, truth)
        for i, fam in enumerate(FAMILIES):
            rng = np.random.default_rng([1, *name.encode(), i])
            raw = apply_physical(clean, mask, sample_physical(rng, clean.shape[:2], only=fam))
            lq = to8(raw)
            out[fam].setdefault("clean", []).append(d_clean)
            out[fam].setdefault("unrounded", []).append(vessel_dice(raw, mask, truth))
            for label, fn in methods.items():
                restored = to8(fn(lq) * mask[..., None])
                out[fam].setdefault(label, []).append(vessel_dice(restored, mask, truth))
        # quality.py's pair, drawn exactly as it draws it (draw 0).
        raw, params = degrade(clean, "real", drive_rng(name), mask=mask)
        row: dict[str, Any] = {"image": name, "families": params["real"]["families"], "clean": d_clean,
                              "unrounded": vessel_dice(raw, mask, truth)}
        lq = to8(raw)
        for label, fn in {"input": lambda img: img, **methods}.items():
            restored = to8(fn(lq) * mask[..., None])
            row[label] = vessel_dice(restored, mask, truth)
        combined.append(row)
        log(f"DRIVE {name} done")
    return out, combined


def table(res: dict[str, dict[str, list[float]]]) -> list[str]:
    labels = [k for k in next(iter(res.values())) if k not in ("clean", "unrounded", "input")]
    lines = ["| family | clean | unrounded | input | " + " | ".join(f"{k} | recovered" for k in labels) + " |",
             "|---|---:|---:|---:|" + "---:|---:|" * len(labels)]
    for fam, by in res.items():
        c, i = float(np.mean(by["clean"])), float(np.mean(by["input"]))
        cells = [f"{c:.3f}", f"{float(np.mean(by['unrounded'])):.3f}", f"{i:.3f}"]
        for k in labels:
            m = float(np.mean(by[k]))
            # Below 0.01 of Dice the gap is within one photograph's noise: no share is quoted.
            cells += [f"{m:.3f}", f"{100 * (m - i) / (c - i):+.0f}%" if c - i > 0.01 else "(no gap)"]
        lines.append(f"| {fam} | " + " | ".join(cells) + " |")
    return lines


def combined_table(rows: Rows) -> list[str]:
    """Per photograph of quality.py's `real` pairs; "share" = its part of the method's summed clean - restored gap."""
    labels = [k for k in rows[0] if k not in ("image", "families", "clean", "unrounded", "input")]
    gaps = {k: sum(float(r["clean"]) - float(r[k]) for r in rows) for k in labels}
    head = " | ".join(f"{k} | share" for k in labels)
    lines = [f"| photograph | families | clean | unrounded | input | {head} |",
             "|---|---|---:|---:|---:|" + "---:|---:|" * len(labels)]
    for r in rows:
        cells = [str(r["image"]), ", ".join(r["families"]),
                 *(f"{float(r[k]):.3f}" for k in ("clean", "unrounded", "input"))]
        for k in labels:
            share = (float(r["clean"]) - float(r[k])) / gaps[k] if gaps[k] > 0 else float("nan")
            cells += [f"{float(r[k]):.3f}", f"{100 * share:+.0f}%"]
        lines.append("| " + " | ".join(cells) + " |")
    means = [f"{float(np.mean([float(r[k]) for r in rows])):.3f}"
             for k in ("clean", "unrounded", "input")]
    for k in labels:
        means += [f"{float(np.mean([float(r[k]) for r in rows])):.3f}", ""]
    lines.append("| mean | | " + " | ".join(means) + " |")
    return lines


def main() -> int:
    parsed = drive_split_args(__doc__.splitlines()[0], "test", "vessel_families.md")
    if parsed is None:
        return 2
    args, drive = parsed
    res, combined = family_dice(drive, args.models, args.limit)
    n = len(res[FAMILIES[0]]["clean"])
    header = [
        "# Vessel Dice by degradation family (one family at a time)", "",
        f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} by `{invocation()}`, ftrt {__version__}, on "
        f"{cpu_name()}, 2 threads; DRIVE {args.split}, {n} photographs, one draw per photograph and family. "
        "Dice of quality.py's fixed Frangi segmenter against the first observer's annotation; recovered = "
        "(method - input) / (clean - input).", ""]
    tail = ["", "## quality.py's `real` pairs, one photograph at a time", "",
            "The same pairs as quality.py's (b) table (draw 0): the families drawn for each photograph, Dice, and each "
            "photograph's share of a restorer's remaining gap, clean - restored summed over the photographs (a "
            "negative share: restored above clean).", "", *combined_table(combined)]
    write_report(args.out, header + table(res) + tail)
    return 0


if __name__ == "__main__":
    sys.exit(main())
