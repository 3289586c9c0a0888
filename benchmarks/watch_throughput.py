"""Throughput of the camera-folder service: `ftrt watch --once` on a folder of photographs.

    python benchmarks/watch_throughput.py [--n 20] [--side 1024] [--gate] [--out benchmarks/results/watch.md]

The CC0 sample photograph (scikit-image) at ``--side`` px, ``--n`` copies with different
brightness (PNG) plus the same number as JPEG-compressed ophthalmic-photography DICOM; the
service runs as a real subprocess on the shipped res-s (ORT CPU) and the wall time from start
to exit is divided by the file count (model loading included, as a restart would pay it).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))

from common import cpu_name, write_report  # noqa: E402
from dicom_samples import make_photo_dicom  # noqa: E402

from ftrt import __version__  # noqa: E402
from ftrt.io import write_image  # noqa: E402


def run(folder: Path, out: Path, gate: bool, threads: int) -> float:
    cmd = [sys.executable, "-m", "ftrt.cli", "watch", str(folder), "-o", str(out), "--once", "--poll", "0.5",
           "--threads", str(threads), *(["--gate"] if gate else [])]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--side", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--gate", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "watch.md"))
    args = ap.parse_args()
    from skimage import data

    base = cv2.resize(data.retina().astype(np.float32) / 255, (args.side, args.side), interpolation=cv2.INTER_AREA)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("png", "dicom"):
            folder = Path(tmp) / kind
            folder.mkdir()
            for i in range(args.n):
                img = np.clip(base * (0.8 + 0.02 * i), 0, 1)
                if kind == "png":
                    write_image(folder / f"cap_{i:03d}.png", img)
                else:
                    make_photo_dicom(folder / f"IM{i:04d}", img, compressed=True)
            seconds = run(folder, Path(tmp) / f"out_{kind}", args.gate, args.threads)
            rows.append((kind, args.n, seconds))
    lines = [
        "# Camera-folder service throughput",
        "",
        f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} by `python benchmarks/watch_throughput.py --n "
        f"{args.n} --side {args.side}{' --gate' if args.gate else ''}`, ftrt {__version__}, on {cpu_name()}, "
        f"{args.threads} threads; shipped res-s on ONNX Runtime CPU at its working size; one run each, wall time "
        "from process start to exit (model loading and the final poll included).",
        "",
        "| input | files | wall s | s / file | files / minute |",
        "|---|---:|---:|---:|---:|",
    ]
    for kind, n, s in rows:
        label = f"{args.side} px PNG" if kind == "png" else f"{args.side} px JPEG-compressed OP DICOM -> derived DICOM"
        lines.append(f"| {label} | {n} | {s:.1f} | {s / n:.2f} | {60 * n / s:.0f} |")
    write_report(args.out, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
