"""Latent diffusion against the CNN restorer, CLAHE and the input: quality on the restorer's protocol, and
what it costs per photograph on this CPU by backend and step count.

    python benchmarks/diffusion.py --pipeline DIR [--cnn twoscale] [--limit 8] [--steps 2 4 8]
                                   [--out benchmarks/results/diffusion.md]

Quality: benchmarks/quality.py's (a) held-out degradation families and (b) vessel Dice on DRIVE test,
(c) CSDI test readability and harm, with the pipeline sampled from noise (its default steps) and in refiner
mode (from the CNN restorer's output, 4 steps); ``--limit`` photographs per set, because each diffusion
photograph costs seconds. No LPIPS: the packages that compute it download their network weights at run time.
Cost: ``DiffusionBackend.run`` on one 768 x 768 image (the working side), per part, median of ``--iters``
runs, on ONNX Runtime and OpenVINO (CPU), 2 threads.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import cpu_name, invocation, write_report  # noqa: E402
from quality import csdi_tests, drive_tests, methods_for, summarise  # noqa: E402

from ftrt import __version__  # noqa: E402
from ftrt.runtime import open_scorer  # noqa: E402
from ftrt.runtime.backends import BackendUnavailable, make_backend  # noqa: E402


def cost(pipeline: str, cnn: str, backends: list[str], steps: list[int], side: int, iters: int) -> list[str]:
    x = np.random.default_rng(0).random((1, 3, side, side)).astype(np.float32)
    lines = ["| backend | model | steps | s / photograph | features | encode | denoise / step | decode | restorer |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for backend in backends:
        try:
            be = make_backend(backend, cnn, threads=2).open()
        except BackendUnavailable as exc:
            lines.append(f"| {backend} | unavailable: {exc} | | | | | | | |")
            continue
        t = []
        for _ in range(iters + 1):
            t0 = time.perf_counter()
            be.run(x)
            t.append(time.perf_counter() - t0)
        be.close()
        lines.append(f"| {backend} | {Path(cnn).stem} (CNN) | - | {statistics.median(t[1:]):.2f} | | | | | |")
        for n in steps:
            for refine in (False, True):
                be = make_backend(backend, pipeline, threads=2, steps=n, refine=refine).open()
                t, parts = [], []
                for _ in range(iters + 1):
                    t0 = time.perf_counter()
                    be.run(x)
                    t.append(time.perf_counter() - t0)
                    parts.append(dict(be.last_timing))
                be.close()
                med = {k: statistics.median(p.get(k, 0.0) for p in parts[1:]) / 1e3 for k in parts[-1]}
                lines.append(f"| {backend} | ldm{' refine' if refine else ''} | {n} | {statistics.median(t[1:]):.2f} | "
                             f"{med['features']:.2f} | {med['encode']:.2f} | {med['denoise_per_step']:.2f} | "
                             f"{med['decode']:.2f} | {med.get('restorer', 0):.2f} |")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pipeline", required=True, help="a pipeline directory from `ftrt export --model LDM -o DIR`")
    ap.add_argument("--cnn", default="twoscale", help="the CNN restorer row (a shipped name or ONNX)")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--limit", type=int, default=8)
    ap.add_argument("--steps", type=int, nargs="+", default=[2, 4, 8])
    ap.add_argument("--refine-steps", type=int, default=4)
    ap.add_argument("--backends", nargs="+", default=["ort", "openvino"])
    ap.add_argument("--side", type=int, default=768)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "diffusion.md"))
    a = ap.parse_args()
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    out = Path(a.out)
    lines = ["# Latent diffusion: quality and cost against the CNN restorer", "",
             f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} by `{invocation()}`, ftrt {__version__}, "
             f"on {cpu_name()}, 2 threads.", ""]
    if not a.skip_quality:
        data = Path(a.data)
        methods = methods_for([a.cnn, a.pipeline, f"{a.pipeline}#steps={a.refine_steps}#refine"])
        d = drive_tests(data / "drive" / "test", methods, log, a.limit)
        c = csdi_tests(data / "csdi", "test", methods, open_scorer("ort", "readability", threads=2), log, a.limit)
        lines += [f"Quality on the first {a.limit} photographs of each set (not the full benchmark: diffusion costs "
                  "seconds per photograph); the protocol of benchmarks/quality.py.", ""]
        lines += summarise(d, c, list(methods))
    lines += ["", f"## Cost per photograph, {a.side} x {a.side} px (seconds, median of {a.iters} runs after one "
              "warm-up)", ""]
    lines += cost(a.pipeline, a.cnn, a.backends, a.steps, a.side, a.iters)
    write_report(out, lines)
    print(out.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
