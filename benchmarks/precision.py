"""Precision: CPU latency and accuracy of INT8 (Q/DQ) and mixed FP16 against FP32, on ORT and OpenVINO.

    python benchmarks/precision.py [--models res-s res-l] [--size 512] [--runs 5] [--threads 2]

For each restorer: FP32 ONNX (shipped weights where they exist), INT8 calibrated
on DRIVE training photographs (``--calib``; MinMax, keep auto), mixed FP16.
Accuracy: the ``ftrt calibrate`` / ``ftrt convert`` report on held-out DRIVE test
photographs. Speed: batch 1 at ``--size``^2, median of ``--runs`` after warm-up.
The same files on OpenVINO's CPU plugin when it is installed (it compiles the Q/DQ
convolutions to INT8 kernels), with their own accuracy report against ORT's FP32.
Writes ``benchmarks/results/precision.md`` and the per-model reports beside it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import cpu_name, module_version, preset_model, time_ms, write_report  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "drive"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["res-s", "res-l"])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--calib", default=str(DATA / "training" / "images"))
    ap.add_argument("--eval", default=str(DATA / "test" / "images"))
    ap.add_argument("--num", type=int, default=16)
    ap.add_argument("--eval-num", type=int, default=8)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "precision.md"))
    args = ap.parse_args()
    if not Path(args.calib).is_dir():
        print(f"calibration images not found: {args.calib} (the research data in ../shared/data)", file=sys.stderr)
        return 2

    import numpy as np
    import onnxruntime as ort

    from ftrt.precision import calibrate_int8, convert_fp16_model
    from ftrt.precision.data import select_images
    from ftrt.precision.report import precision_report, write_report as write_precision_report
    from ftrt.export import export_onnx
    from ftrt.runtime.backends import BackendUnavailable
    from ftrt.runtime.backends.openvino_backend import OpenVinoBackend
    from ftrt.runtime.backends import make_backend

    results_dir = Path(args.out).parent
    eval_paths = select_images([args.eval], args.eval_num).used
    from ftrt.precision.calibrate import _scorer

    scorer = _scorer(args.threads)  # readability decisions FP32 vs low precision, when the classifier ships
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            model, meta, shipped = preset_model(name)
            weights = "shipped" if shipped else "random (no trained weights shipped)"
            fp32 = Path(tmp) / f"{name}.onnx"
            export_onnx(model, fp32, preset=name, check=False, work_side=meta.get("work_side"))
            int8 = Path(tmp) / f"{name}.int8.onnx"
            q = calibrate_int8(fp32, [args.calib], int8, num=args.num, shapes=[f"{args.size}x{args.size}"],
                               eval_num=1, threads=args.threads, log=lambda m: print(m, file=sys.stderr))
            half = Path(tmp) / f"{name}.fp16.onnx"
            convert_fp16_model(fp32, half, images=[args.calib], eval_num=1, threads=args.threads)
            x = np.random.default_rng(0).uniform(size=(1, 3, args.size, args.size)).astype(np.float32)
            for label, path, note in ((("fp32", fp32, "")), ("int8", int8, f"{q.details['quantized_convs']} convs INT8"),
                                      ("fp16", half, "")):
                with make_backend("ort", str(path), threads=args.threads) as be:
                    ms = statistics.median(time_ms(lambda: be.run(x), args.warmup, args.runs))
                try:
                    with OpenVinoBackend(path, threads=args.threads) as ov:
                        ov_ms = statistics.median(time_ms(lambda: ov.run(x), args.warmup, args.runs))
                except BackendUnavailable as exc:
                    print(f"OpenVINO columns left empty: {exc}", file=sys.stderr)
                    ov_ms = None
                summaries = {}
                if label != "fp32":
                    notes = {"weights": weights, "calibration": f"{args.num} DRIVE training images"}
                    for backend in ("ort", "openvino") if ov_ms else ("ort",):
                        rep = precision_report(fp32, path, eval_paths, label, threads=args.threads, scorer=scorer,
                                               backend=backend)
                        suffix = "" if backend == "ort" else f"_{backend}"
                        write_precision_report(rep, results_dir / f"precision_{name}_{label}{suffix}.json", notes)
                        summaries[backend] = rep["summary"]
                acc, ov_acc = summaries.get("ort"), summaries.get("openvino")
                rows.append((name, weights, label, ms, acc, ov_ms, ov_acc, note))
                print(f"{name} {label}: ORT {ms:.0f} ms"
                      + (f", {acc['psnr_vs_fp32_mean']:.1f} dB vs FP32" if acc else "")
                      + (f"; OpenVINO {ov_ms:.0f} ms" if ov_ms else "")
                      + (f", {ov_acc['psnr_vs_fp32_mean']:.1f} dB" if ov_acc else ""), flush=True)
    base = {r[0]: r[3] for r in rows if r[2] == "fp32"}
    ov_base = {r[0]: r[5] for r in rows if r[2] == "fp32"}
    lines = [
        "# Precision: INT8 Q/DQ and mixed FP16 vs FP32 on ONNX Runtime and OpenVINO (CPU)",
        "",
        f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} by `python benchmarks/precision.py "
        f"--size {args.size} --runs {args.runs} --threads {args.threads}`.",
        f"Machine: {cpu_name()}, {os.cpu_count()} cores visible; {args.threads} threads. "
        f"onnxruntime {ort.__version__}, openvino {module_version('openvino')} (INFERENCE_PRECISION_HINT f32). "
        f"Batch 1, {args.size}x{args.size}, median of {args.runs} runs after {args.warmup} warm-up runs.",
        f"INT8: MinMax, symmetric, per-channel weights, Conv only, first/last conv and the colour heads FP32 "
        f"(`--keep auto`), calibrated on {args.num} DRIVE training photographs at {args.size}x{args.size}. "
        f"Accuracy: {len(eval_paths)} held-out DRIVE test photographs degraded (mixed, seed 0) and restored at the "
        "model's working size, against the FP32 model on ORT. The same three files run on both runtimes; "
        "\"vs ORT FP32\" is the speed-up over the FP32 row's ORT time.",
        "",
        "| model | weights | precision | ORT CPU (ms) | vs ORT FP32 | PSNR vs FP32 mean / worst (dB) "
        "| PSNR vs clean (dB) | OpenVINO CPU (ms) | vs ORT FP32 | vs OpenVINO FP32 | OpenVINO PSNR vs FP32 mean / worst "
        "(dB) | notes |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    pair = lambda a: f"{a['psnr_vs_fp32_mean']:.1f} / {a['psnr_vs_fp32_worst']:.1f}" if a else "-"  # noqa: E731
    for name, weights, label, ms, acc, ov_ms, ov_acc, note in rows:
        ref = f"{acc['psnr_ref_low_mean']:.2f}" if acc else "-"
        ov_cols = (f"{ov_ms:.0f} | {base[name] / ov_ms:.2f}x | {ov_base[name] / ov_ms:.2f}x" if ov_ms and ov_base[name]
                   else "- | - | -")
        lines.append(f"| {name} | {weights} | {label} | {ms:.0f} | {base[name] / ms:.2f}x | {pair(acc)} | {ref} | "
                     f"{ov_cols} | {pair(ov_acc)} | {note} |")
    write_report(args.out, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
