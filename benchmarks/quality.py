"""Restoration quality a sceptic accepts: held-out degradation families, vessels, real cataract photographs.

    python benchmarks/quality.py [--data ../shared/data] [--models res-s DIR#steps=4#refine ...]
                                 [--csdi-split test|val]
                                 [--out benchmarks/results/quality.md]

Every method runs through the torch-free runtime (ONNX Runtime CPU, 2 threads) and the same fundus pipeline
as ``ftrt restore`` (FOV crop, the model's own working side). Anchors on every row: the input as it is,
CLAHE and the dark channel prior.

(a) Paired synthetic tests on the 20 DRIVE *test* photographs (never trained on): ``ftrt degrade --seed 0``
    with ``cofe`` and ``cataract`` (families the default restorer never trains on) and ``real`` (the
    families it trains on, independent draws); PSNR / SSIM inside DRIVE's FOV masks.
(b) Vessels: the same degraded-then-restored photographs segmented by a fixed classical segmenter
    (Frangi vesselness of the standardised green channel, the FOV's top 12 % = DRIVE's vessel share; it never
    saw a restored image) and scored by Dice against the first observer's manual annotation; the share of
    the clean-minus-degraded gap recovered; false-vessel rate (vessel-like pixels > 3 px from any true
    vessel, ftrt.realism). One draw of each family per photograph (seeded by its name); ``--draw N`` takes
    another, to see how much a figure moves with the draw alone before reading a difference between models.
(c) Real cataract photographs (CSDI, never trained on; a fixed split by file-name hash: ``val`` for choices,
    ``test`` for reporting): readable before/after by the shipped gate, photographs made unreadable,
    vessel contrast (ftrt.realism), FOV luminance and RMS / local contrast change.

Writes the summary to --out, per-image rows to ``<out stem>_per_image.md`` and a before/after grid to
``<out stem>_grid.png``. Needs the research data in ``../shared/data`` (not shipped with ftrt).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import cpu_name, invocation, write_report  # noqa: E402

from ftrt import __version__  # noqa: E402
from ftrt.degrade import degrade  # noqa: E402
from ftrt.enhance import enhance  # noqa: E402
from ftrt.evaluate import read_mask  # noqa: E402
from ftrt.fov import fov_mask  # noqa: E402
from ftrt.interlace import row_comb_excess  # noqa: E402
from ftrt.io import collect_inputs, read_image  # noqa: E402
from ftrt.metrics import dice, psnr, ssim  # noqa: E402
from ftrt.realism import VESSEL_SHARE, inner_fov, vessel_contrast, vesselness  # noqa: E402
from ftrt.runtime import open_pipeline, open_scorer  # noqa: E402
from ftrt.runtime.models import WEIGHTS_DIR  # noqa: E402
from ftrt.training.data import heldout_by_name  # noqa: E402

KINDS = ("cofe", "cataract", "real")  # the first two are never trained on by the default restorer
HELD_OUT = ("cofe", "cataract")
CSDI_VAL_FRACTION = 0.3
Method = Callable[[np.ndarray], np.ndarray]


def to8(img: np.ndarray) -> np.ndarray:
    """Through 8-bit, as a written PNG would be: every method is scored on what a user would get."""
    return np.round(np.clip(img, 0, 1) * 255).astype(np.float32) / 255


def segment(v: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, float]:
    """The fixed segmenter on a vesselness map: (vessel pixels, the threshold it used)."""
    inside = inner_fov(mask)
    t = float(np.quantile(v[inside], 1 - VESSEL_SHARE))
    return (v > t) & inside, t


def fov_stats(img: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    y = img @ np.array([0.299, 0.587, 0.114], np.float32)
    inside = inner_fov(mask)
    local = np.abs(y - cv2.GaussianBlur(y, (0, 0), max(1.0, y.shape[0] / 256)))
    return {"Y": float(y[mask].mean() * 255), "rms": float(y[mask].std() * 255),
            "local": float(local[inside].mean() * 255)}


def methods_for(models: list[str]) -> dict[str, Method]:
    out: dict[str, Method] = {"input": lambda img: img, "CLAHE": lambda img: enhance(img, "clahe"),
                              "DCP": lambda img: enhance(img, "dcp")}
    for spec in models:
        # A diffusion pipeline directory may carry sampler options (DIR#steps=4#refine), any restorer the
        # pipeline's strength (res-s#strength=1.5).
        name, *opts = spec.split("#")
        kw: dict[str, Any] = {"refine": "refine" in opts}
        kw.update(("steps", int(o[6:])) for o in opts if o.startswith("steps="))
        kw.update(("strength", float(o[9:])) for o in opts if o.startswith("strength="))
        opened = open_pipeline(name, "ort", threads=2, **kw)
        side = opened.pipeline.work_side
        label = f"{Path(name).stem}{''.join(' ' + o for o in opts)} ({side or 'native'} px)"
        out[label] = lambda img, p=opened.pipeline: p.restore(img).image
    return out


def drive_photographs(drive: Path, limit: int | None = None) -> Iterator[tuple[str, np.ndarray, np.ndarray,
                                                                               np.ndarray]]:
    """DRIVE's photographs in name order: (file stem, the clean photograph inside its FOV through 8 bit, the FOV
    mask, the first observer's vessel annotation)."""
    for img_path in sorted((drive / "images").glob("*.tif"))[:limit]:
        stem = img_path.stem.split("_")[0]
        clean, _ = read_image(img_path)
        mask = read_mask(next((drive / "mask").glob(f"{stem}_*")))
        truth = read_mask(next((drive / "1st_manual").glob(f"{stem}_*")))
        yield img_path.stem, to8(clean * mask[..., None]), mask, truth


def drive_rng(name: str, draw: int = 0) -> np.random.Generator:
    """The generator each family's degradation of DRIVE photograph ``name`` is drawn from (cataract_blur.py
    re-draws the same parameters from it)."""
    return np.random.default_rng([draw, *name.encode()])


def drive_tests(drive: Path, methods: dict[str, Method], log: Callable[[str], None],
                limit: int | None = None, draw: int = 0) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    for name, clean, mask, truth in drive_photographs(drive, limit):
        seg_clean, t_clean = segment(vesselness(clean, mask), mask)
        # Pixels > 3 px from any annotated vessel (ftrt.realism.false_vessel_rate, with the clean threshold
        # computed once per photograph).
        away = inner_fov(mask) & ~cv2.dilate(truth.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
        for kind in KINDS:
            lq, _ = degrade(clean, kind, drive_rng(name, draw), mask=mask)
            lq = to8(lq)
            for label, fn in methods.items():
                t0 = time.perf_counter()
                out = to8(fn(lq) * mask[..., None])
                sec = time.perf_counter() - t0
                v = vesselness(out, mask)
                seg, _ = segment(v, mask)
                rows.append({"image": name, "kind": kind, "method": label, "psnr": psnr(out, clean, mask),
                             "ssim": ssim(out, clean, mask), "dice": dice(seg, truth & inner_fov(mask)),
                             "dice_clean": dice(seg_clean, truth & inner_fov(mask)),
                             "false_vessel": float((v[away] > t_clean).mean()), "seconds": sec})
        log(f"DRIVE {name} done")
    return {"rows": rows}


def csdi_tests(csdi: Path, split: str, methods: dict[str, Method], gate: Any,
               log: Callable[[str], None], limit: int | None = None) -> dict[str, Any]:
    files = collect_inputs([str(csdi / "images_1024")])
    kept, val = heldout_by_name(files, CSDI_VAL_FRACTION, salt="csdi-val")
    chosen = (val if split == "val" else kept)[:limit]
    rows: list[dict[str, Any]] = []
    for path in chosen:
        img, _ = read_image(path)
        mask = fov_mask(img)
        img = img * mask[..., None]
        for label, fn in methods.items():
            t0 = time.perf_counter()
            out = to8(fn(img) * mask[..., None])
            sec = time.perf_counter() - t0
            r = gate.score(out)
            rows.append({"image": path.name, "method": label, "readable": bool(r.readable),
                         "retina": r.probs["retina"], "vessel_contrast": vessel_contrast(out, mask),
                         "row_comb": row_comb_excess(out),
                         **fov_stats(out, mask), "seconds": sec})
        log(f"CSDI {path.name} done")
    return {"rows": rows, "split": split, "images": len(chosen)}


def _finite(rows: list[dict[str, Any]], key: str) -> list[float]:
    """The rows' finite values of ``key`` (rows written before a column existed have none)."""
    return [r[key] for r in rows if np.isfinite(r.get(key, np.nan))]


def mean(rows: list[dict[str, Any]], key: str) -> float:
    vals = _finite(rows, key)
    return float(np.mean(vals)) if vals else float("nan")


def median(rows: list[dict[str, Any]], key: str) -> float:
    vals = _finite(rows, key)
    return float(np.median(vals)) if vals else float("nan")


def summarise(drive: dict[str, Any], csdi: dict[str, Any] | None, methods: list[str]) -> list[str]:
    lines: list[str] = []
    rows = drive["rows"]

    def pick(method: str, kind: str | None = None) -> list[dict[str, Any]]:
        """The DRIVE rows of one method (and degradation family)."""
        return [r for r in rows if r["method"] == method and (kind is None or r["kind"] == kind)]

    if rows:
        lines += [f"## (a) Paired synthetic tests, DRIVE {drive.get('split', 'test')} ({len({r['image'] for r in rows})} photographs)", "",
                  "`cofe` and `cataract` are held out of the default restorer's training entirely; `real` is the family "
                  "it trains on (independent draws). PSNR (dB) / SSIM inside the FOV.", "",
                  "| method | " + " | ".join(f"{k} PSNR | {k} SSIM" for k in KINDS) + " | s / image |",
                  "|---|" + "---:|---:|" * len(KINDS) + "---:|"]
        for m in methods:
            cells = []
            for k in KINDS:
                sel = pick(m, k)
                cells += [f"{mean(sel, 'psnr'):.2f}", f"{mean(sel, 'ssim'):.4f}"]
            t = mean(pick(m), "seconds")
            lines.append(f"| {m} | " + " | ".join(cells) + f" | {t:.2f} |")
        clahe = {k: pick("CLAHE", k) for k in HELD_OUT}
        lines += ["", "Target: held-out families >= CLAHE + 4 dB PSNR and + 0.05 SSIM.", ""]
        for m in methods[3:]:
            for k in HELD_OUT:
                sel = pick(m, k)
                dp = mean(sel, "psnr") - mean(clahe[k], "psnr")
                ds = mean(sel, "ssim") - mean(clahe[k], "ssim")
                lines.append(f"- {m}, {k}: {dp:+.2f} dB, {ds:+.4f} SSIM vs CLAHE: "
                             f"{'met' if dp >= 4 and ds >= 0.05 else 'NOT met'}")
        lines += ["", "## (b) Vessels on the same photographs (Dice against DRIVE's manual annotation)", "",
                  "Fixed segmenter: Frangi vesselness of the standardised green channel, top 12 % of the inner FOV. "
                  f"Clean photographs score {mean(pick('input'), 'dice_clean'):.3f}. "
                  "Gap recovered = (method - degraded) / (clean - degraded). False vessels: share of pixels > 3 px "
                  "from any annotated vessel that respond like a vessel.", "",
                  "| method | " + " | ".join(f"{k} Dice | {k} gap recovered" for k in KINDS) + " | false vessels |",
                  "|---|" + "---:|---:|" * len(KINDS) + "---:|"]
        for m in methods:
            cells = []
            for k in KINDS:
                sel, base = pick(m, k), pick("input", k)
                d, d0, dc = mean(sel, "dice"), mean(base, "dice"), mean(base, "dice_clean")
                cells += [f"{d:.3f}", f"{(d - d0) / (dc - d0):+.0%}" if dc > d0 else "-"]
            lines.append(f"| {m} | " + " | ".join(cells) + f" | {mean(pick(m), 'false_vessel'):.4f} |")
    if csdi is not None:
        crow = csdi["rows"]
        base = {r["image"]: r for r in crow if r["method"] == "input"}
        lines += ["", f"## (c) Real cataract photographs: CSDI, {csdi['split']} split ({csdi['images']} photographs)",
                  "", "Readable: the shipped gate (valid and retina readable). Harmed: readable before, not after. "
                  "Luminance (Y), RMS contrast and local contrast (mean |Y - Gaussian-blurred Y|) in the FOV, "
                  "vessel contrast as in ftrt.realism; all on 0-255. Row comb: fine power (periods under 4 px) across "
                  "rows over that along them, median (1: no stripes; ftrt.interlace).", "",
                  "| method | readable | became readable | harmed | vessel contrast | Y | RMS contrast | local contrast "
                  "| row comb |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for m in methods:
            sel = [r for r in crow if r["method"] == m]
            became = sum(r["readable"] and not base[r["image"]]["readable"] for r in sel)
            harmed = sum(base[r["image"]]["readable"] and not r["readable"] for r in sel)
            lines.append(f"| {m} | {sum(r['readable'] for r in sel)}/{len(sel)} | {became} | {harmed} | "
                         f"{mean(sel, 'vessel_contrast'):.4f} | {mean(sel, 'Y'):.1f} | {mean(sel, 'rms'):.1f} | "
                         f"{mean(sel, 'local'):.2f} | {median(sel, 'row_comb'):.2f} |")
    return lines


def per_image(drive: dict[str, Any], csdi: dict[str, Any] | None) -> list[str]:
    lines = ["# Per-image results of benchmarks/quality.py", "", f"## DRIVE {drive.get('split', 'test')}", "",
             "| image | kind | method | PSNR | SSIM | Dice | false vessels |", "|---|---|---|---:|---:|---:|---:|"]
    for r in drive["rows"]:
        lines.append(f"| {r['image']} | {r['kind']} | {r['method']} | {r['psnr']:.2f} | {r['ssim']:.4f} | "
                     f"{r['dice']:.3f} | {r['false_vessel']:.4f} |")
    if csdi is not None:
        lines += ["", f"## CSDI ({csdi['split']} split)", "",
                  "| image | method | readable | P(retina) | vessel contrast | Y | RMS | local | row comb |",
                  "|---|---|---|---:|---:|---:|---:|---:|---:|"]
        for r in csdi["rows"]:
            lines.append(f"| {r['image']} | {r['method']} | {'yes' if r['readable'] else 'no'} | {r['retina']:.2f} | "
                         f"{r['vessel_contrast']:.4f} | {r['Y']:.1f} | {r['rms']:.1f} | {r['local']:.2f} | "
                         f"{r.get('row_comb', float('nan')):.2f} |")
    return lines


def grid(csdi_dir: Path, drive: Path, methods: dict[str, Method], labels: list[str], out: Path) -> None:
    """A few photographs (rows) through the chosen methods (columns), 256 px each, labelled."""
    files = sorted(collect_inputs([str(csdi_dir / "images_1024")]))
    _, val = heldout_by_name(files, CSDI_VAL_FRACTION, salt="csdi-val")
    picks = [p for p in files if p not in val][:: max(1, len(files) // 4)][:3]
    clean, _ = read_image(sorted((drive / "images").glob("*.tif"))[0])
    mask = fov_mask(clean)
    lq, _ = degrade(clean * mask[..., None], "cataract", np.random.default_rng(0), mask=mask)
    inputs = [read_image(p)[0] for p in picks] + [lq]
    rows = []
    for img in inputs:
        cells = []
        for label in labels:
            o = cv2.resize(np.clip(methods[label](img), 0, 1), (256, 256), interpolation=cv2.INTER_AREA)
            o8 = np.ascontiguousarray((o * 255 + 0.5).astype(np.uint8))
            cv2.putText(o8, label.split(" (")[0], (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1,
                        cv2.LINE_AA)
            cells.append(o8.astype(np.float32) / 255)
        rows.append(np.concatenate(cells, axis=1))
    from ftrt.io import write_image

    write_image(out, np.concatenate(rows, axis=0))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--models", nargs="*", help="restorer names or ONNX paths (default: the shipped restorers)")
    ap.add_argument("--csdi-split", choices=["test", "val", "none"], default="test")
    ap.add_argument("--drive-split", choices=["test", "training"], default="test",
                    help="training: DRIVE's 20 training photographs, for choosing between candidates without "
                         "touching the test photographs (restorers that train on them have seen them clean)")
    ap.add_argument("--limit", type=int, help="only the first N photographs of each set (a quick look, not a result)")
    ap.add_argument("--skip-drive", action="store_true", help="only the real photographs (c)")
    ap.add_argument("--draw", type=int, default=0,
                    help="another draw of each DRIVE photograph's degradations (0: the draw of record)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "quality.md"))
    args = ap.parse_args()
    data = Path(args.data)
    drive = data / "drive" / args.drive_split
    if not (drive / "images").is_dir():
        print(f"DRIVE {args.drive_split} set not found under {drive}", file=sys.stderr)
        return 2
    models = args.models if args.models is not None else [n for n in ("res-s", "res-s-drive")
                                                           if (WEIGHTS_DIR / f"{n}.onnx").exists()]
    methods = methods_for(models)
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    d = {"rows": []} if args.skip_drive else drive_tests(drive, methods, log, args.limit, args.draw)
    d["split"] = args.drive_split
    c = None
    if args.csdi_split != "none" and (data / "csdi" / "images_1024").is_dir():
        c = csdi_tests(data / "csdi", args.csdi_split, methods, open_scorer("ort", "readability", threads=2), log,
                       args.limit)
    labels = list(methods)
    out = Path(args.out)
    header = [
        "# Restoration quality: held-out degradations, vessels, real cataract photographs", "",
        f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} by `{invocation()}`, ftrt {__version__}, on "
        f"{cpu_name()}, 2 threads; every model through ONNX Runtime CPU and the `ftrt restore` pipeline at its own "
        f"working side. Per-image rows: `{out.stem}_per_image.md`; pictures: `{out.stem}_grid.png`.", ""]
    write_report(out, header + summarise(d, c, labels))
    write_report(out.with_name(f"{out.stem}_per_image.md"), per_image(d, c))
    out.with_name(f"{out.stem}.json").write_text(json.dumps({"drive": d, "csdi": c}, default=float))
    grid(data / "csdi", drive, methods, labels[:2] + labels[3:], out.with_name(f"{out.stem}_grid.png"))
    print(out.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
