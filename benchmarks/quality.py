"""Restoration quality on degraded DRIVE test images: identity, classical anchors, shipped models.

    python benchmarks/quality.py [--data ../shared/data] [--out benchmarks/results/quality.md]

Degrades the 20 DRIVE test photographs with ``ftrt degrade --kind mixed --seed 0``,
restores them with every method, and reports PSNR / SSIM inside DRIVE's own FOV
masks. Needs the research data in ``../shared/data`` (not shipped with ftrt).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import cpu_name, write_report  # noqa: E402

from ftrt import __version__  # noqa: E402
from ftrt.batch import degrade_files, run_batch  # noqa: E402
from ftrt.enhance import enhance  # noqa: E402
from ftrt.evaluate import evaluate_dirs  # noqa: E402
from ftrt.runtime import FundusPipeline, PipelineConfig, open_backend  # noqa: E402
from ftrt.runtime.models import WEIGHTS_DIR  # noqa: E402

def _scorer():
    from ftrt.runtime.readability import ReadabilityScorer

    if not (WEIGHTS_DIR / "readability.onnx").exists():
        return None
    return ReadabilityScorer(open_backend("ort", "readability", threads=2))


def _readable_share(scorer, folder: Path) -> str:
    if scorer is None:
        return "-"
    from ftrt.io import collect_inputs, read_image

    files = collect_inputs([str(folder)])
    n = sum(scorer.score(read_image(p)[0]).readable for p in files)
    return f"{n}/{len(files)}"


def _is_restorer(path: Path) -> bool:
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    return meta.get("model", "restorer") == "restorer"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "quality.md"))
    ap.add_argument("--models", nargs="*", help="weights names or paths (default: every shipped model)")
    args = ap.parse_args()
    drive = Path(args.data) / "drive" / "test"
    if not (drive / "images").is_dir():
        print(f"DRIVE test set not found under {drive}", file=sys.stderr)
        return 2
    models = args.models if args.models is not None else sorted(
        p.stem for p in WEIGHTS_DIR.glob("*.onnx") if _is_restorer(p))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp_p = Path(tmp)
        ref = tmp_p / "ref"
        # References are written as PNG so that pred and ref go through the same 8-bit rounding.
        run_batch([str(drive / "images")], ref, lambda p, img, d, i: (img, {}), progress=False)
        degraded = tmp_p / "degraded"
        degrade_files([str(ref)], degraded, kind="mixed", seed=0, progress=False)
        methods: dict[str, Path] = {"identity (degraded input)": degraded}
        timings: dict[str, float] = {"identity (degraded input)": 0.0}
        for method in ("clahe", "dcp"):
            t0 = time.perf_counter()
            out = tmp_p / method
            run_batch([str(degraded)], out, lambda p, img, d, i, m=method: (enhance(img, m), {}), progress=False)
            methods[method.upper()] = out
            timings[method.upper()] = (time.perf_counter() - t0) / 20
        for name in models:
            backend = open_backend("ort", name, threads=2)
            for max_side in (None, 0):
                pipe = FundusPipeline(backend, PipelineConfig(max_side=max_side, tile=None))
                side = f"work side {pipe.work_side} px" if pipe.work_side else "native resolution"
                label = f"{Path(name).stem} (ORT, {side})"
                if label in methods:
                    continue
                out = tmp_p / f"model_{Path(name).stem}_{max_side}"
                t0 = time.perf_counter()
                run_batch([str(degraded)], out, lambda p, img, d, i, pp=pipe: (pp.restore(img).image, {}),
                          progress=False)
                methods[label] = out
                timings[label] = (time.perf_counter() - t0) / 20
        scorer = _scorer()
        for label, folder in methods.items():
            rep = evaluate_dirs(folder, ref, drive / "mask")
            if rep["errors"]:
                print("\n".join(rep["errors"]), file=sys.stderr)
                return 1
            rows.append((label, rep["mean"]["psnr"], rep["mean"]["ssim"], len(rep["images"]), timings[label],
                         _readable_share(scorer, folder)))
    lines = [
        "# Restoration quality on degraded DRIVE test images",
        "",
        f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} by `python benchmarks/quality.py`, ftrt {__version__},",
        f"on {cpu_name()}, 2 threads; models run through the torch-free runtime (ONNX Runtime CPU, the",
        "shipped ONNX) with the same fundus pipeline as `ftrt restore`: FOV crop, the model's working resolution",
        "(its correction upsampled onto the full-resolution photograph), or native resolution.",
        "",
        "Input: the 20 DRIVE test photographs degraded with `ftrt degrade --kind mixed --seed 0`.",
        "Metrics: PSNR (dB) and SSIM (Gaussian window, sigma 1.5) inside DRIVE's own FOV masks, mean over images.",
        "",
        "Readable: share of images the shipped readability classifier calls readable (its own thresholds).",
        "",
        "| method | PSNR (dB) | SSIM | readable | images | s / image |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, p, s, n, t, r in rows:
        lines.append(f"| {label} | {p:.2f} | {s:.4f} | {r} | {n} | {t:.2f} |")
    clahe_row = next(r for r in rows if r[0] == "CLAHE")
    lines += ["", "Target: a shipped model beats CLAHE by at least 4 dB PSNR and 0.05 SSIM.", ""]
    for label, p, s, *_ in rows[3:]:
        ok = p - clahe_row[1] >= 4.0 and s - clahe_row[2] >= 0.05
        lines.append(f"- {label}: {p - clahe_row[1]:+.2f} dB, {s - clahe_row[2]:+.4f} SSIM vs CLAHE: "
                     f"{'met' if ok else 'NOT met'}")
    write_report(args.out, lines)
    return 0

if __name__ == "__main__":
    sys.exit(main())
