"""How much of the paired-test PSNR gap is global colour: PSNR before and after an oracle colour correction.

    python benchmarks/colour_oracle.py [--models res-s X.onnx ...] [--split training|test] [--limit N]
                                       [--out benchmarks/results/colour_oracle.md]

quality.py's paired tests score PSNR against the clean photograph. Each photograph's own brightness and colour
weigh heavily there, and a blind restorer cannot know them. Here every method's output (and the unrestored input)
is also scored after the best per-channel gain and offset that maps it onto the clean photograph inside the FOV
(least squares, an oracle no deployed model has). PSNR after the oracle is what is left once global colour is
forgiven: the local structure, veil, uneven light and blur. One more row sets the unrestored input's per-channel
mean and spread to the camera's average (the split's other clean photographs): the most a global colour correction
could do that knew the camera but not the photograph. The same pairs as quality.py (one draw per photograph
and family, seeded by the file name), through 8 bits both ways, restored through the `ftrt restore` pipeline
(ONNX Runtime CPU, 2 threads).
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import cpu_name, drive_split_args, invocation, write_report  # noqa: E402
from quality import KINDS, drive_photographs, drive_rng, methods_for, to8  # noqa: E402

from ftrt import __version__  # noqa: E402
from ftrt.degrade import degrade  # noqa: E402
from ftrt.metrics import psnr  # noqa: E402


def oracle_affine(img: np.ndarray, clean: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``img`` with each channel mapped by the gain and offset that best fit ``clean`` inside ``mask``."""
    out = img.copy()
    ones = np.ones(int(mask.sum()), np.float64)
    for c in range(3):
        a = np.stack([img[..., c][mask].astype(np.float64), ones], axis=1)
        gain, offset = np.linalg.lstsq(a, clean[..., c][mask].astype(np.float64), rcond=None)[0]
        out[..., c] = img[..., c] * gain + offset
    return np.clip(out, 0, 1) * mask[..., None]


def camera_colour(img: np.ndarray, mask: np.ndarray, mean: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """``img`` with each channel's FOV mean and spread set to ``mean`` and ``spread``: what knowing the camera's
    average colour (not this photograph's) is worth to a global colour correction."""
    out = img.copy()
    for c in range(3):
        v = img[..., c][mask]
        out[..., c] = (img[..., c] - v.mean()) / max(float(v.std()), 1e-3) * spread[c] + mean[c]
    return np.clip(out, 0, 1) * mask[..., None]


def channel_stats(img: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(2, 3): each channel's mean and spread inside ``mask``, summed in float64 (float32 over ~200k pixels
    drifts by ~2e-4)."""
    v = img[mask].astype(np.float64)
    return np.stack([v.mean(axis=0), v.std(axis=0)])


CAMERA = "camera's mean colour"


def scores(drive: Path, models: list[str], limit: int | None,
           log=lambda m: print(m, file=sys.stderr, flush=True)) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """{family: {method: [(PSNR, PSNR after the oracle) per photograph]}}."""
    methods = {k: v for k, v in methods_for(models).items() if k != "DCP"}
    out: dict[str, dict[str, list[tuple[float, float]]]] = {k: {} for k in KINDS}
    photos = list(drive_photographs(drive, limit))
    stats = np.stack([channel_stats(clean, mask) for _, clean, mask, _ in photos])
    for i, (name, clean, mask, _) in enumerate(photos):
        # The camera's average over the split's other clean photographs (leave one out).
        cam = np.delete(stats, i, axis=0).mean(axis=0)
        methods[CAMERA] = lambda img, m=mask, c=cam: camera_colour(img, m, c[0], c[1])
        for kind in KINDS:
            lq = to8(degrade(clean, kind, drive_rng(name), mask=mask)[0])
            for label, fn in methods.items():
                res = to8(fn(lq) * mask[..., None])
                out[kind].setdefault(label, []).append(
                    (psnr(res, clean, mask), psnr(oracle_affine(res, clean, mask), clean, mask)))
        log(f"DRIVE {name} done")
    return out


def table(res: dict[str, dict[str, list[tuple[float, float]]]]) -> list[str]:
    labels = list(next(iter(res.values())))
    lines = ["| method | " + " | ".join(f"{k} PSNR | {k} after oracle" for k in res) + " |",
             "|---|" + "---:|---:|" * len(res)]
    for label in labels:
        cells = []
        for by in res.values():
            v = np.array(by[label])
            cells += [f"{v[:, 0].mean():.2f}", f"{v[:, 1].mean():.2f}"]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def main() -> int:
    parsed = drive_split_args(__doc__.splitlines()[0], "training", "colour_oracle.md")
    if parsed is None:
        return 2
    args, drive = parsed
    res = scores(drive, args.models, args.limit)
    n = len(next(iter(res[KINDS[0]].values())))
    header = [
        "# PSNR before and after an oracle global colour correction", "",
        f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} by `{invocation()}`, ftrt {__version__}, on "
        f"{cpu_name()}, 2 threads; DRIVE {args.split}, {n} photographs, quality.py's pairs (draw 0), inputs and "
        "outputs through 8 bits. PSNR (dB) inside the FOV against the clean photograph; \"after oracle\": after the "
        "best per-channel gain and offset fitted to the clean photograph (no deployed model knows it). "
        f"\"{CAMERA}\": the unrestored input with each channel's FOV mean and spread set to the average of the "
        "split's other clean photographs (the same camera; what a global colour correction that knew the camera, "
        "but not the photograph, could do).", ""]
    write_report(args.out, header + table(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
