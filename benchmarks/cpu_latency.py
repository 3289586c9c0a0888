"""CPU latency: PyTorch eager vs ONNX Runtime (and OpenVINO) for the restorer presets and the readability classifier.

ONNX Runtime runs twice: the file as exported, and as ftrt's ORT backend loads it by default
(grouped convs laid out for the NCHWc kernels and the decoder's upsampling convs run at low
resolution, ftrt/runtime/cpu_layout.py).

    python benchmarks/cpu_latency.py [--models res-s res-l readability] [--sizes 256 512 1024] [--runs 5]

The classifier runs at its fixed input side, batch 1 and 8, whatever ``--sizes`` says.

Each cell: ``--warmup`` untimed runs, then the median of ``--runs`` timed runs, batch 1.
Weights are the shipped ones where they exist (speed does not depend on their values).
Writes ``benchmarks/results/cpu_latency.md``.
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

from common import cpu_name, module_version, time_ms, write_report  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["res-s", "res-l", "readability"])
    ap.add_argument("--sizes", nargs="+", type=int, default=[256, 512, 1024])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "cpu_latency.md"))
    args = ap.parse_args()

    import numpy as np
    import onnxruntime as ort
    import torch

    from ftrt.export import export_onnx
    from ftrt.models import build_model
    from ftrt.models.pretrained import load_model, shipped_weights
    from ftrt.runtime.backends import BackendUnavailable
    from ftrt.runtime.backends.openvino_backend import OpenVinoBackend
    from ftrt.runtime.backends.ort import OrtBackend

    torch.set_num_threads(args.threads)
    rows = []
    layout_notes: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            if shipped_weights(name):
                model, _ = load_model(name)
            else:
                model = build_model(name).eval()
            onnx_path = Path(tmp) / f"{name}.onnx"
            export_onnx(model, onnx_path, preset=name, opset=17, check=False)
            be = OrtBackend(onnx_path, threads=args.threads).open()
            plain = OrtBackend(onnx_path, threads=args.threads, cpu_layout=False).open()
            layout_notes[name] = be.info.graph
            try:
                ov = OpenVinoBackend(onnx_path, threads=args.threads).open()
            except BackendUnavailable as exc:
                print(f"OpenVINO column left empty: {exc}", flush=True)
                ov = None
            if getattr(model, "task", "") == "readability":
                shapes = [(1, model.input_side), (8, model.input_side)]
            else:
                shapes = [(1, size) for size in args.sizes]
            for batch, size in shapes:
                x = np.random.default_rng(0).uniform(size=(batch, 3, size, size)).astype(np.float32)
                xt = torch.from_numpy(x)
                with torch.inference_mode():
                    t_torch = time_ms(lambda: model(xt), args.warmup, args.runs)
                t_ort = time_ms(lambda: be.run(x), args.warmup, args.runs)
                med_p = statistics.median(time_ms(lambda: plain.run(x), args.warmup, args.runs))
                med_t, med_o = statistics.median(t_torch), statistics.median(t_ort)
                med_v = statistics.median(time_ms(lambda: ov.run(x), args.warmup, args.runs)) if ov else None
                shape = f"{size}x{size}" + (f", batch {batch}" if batch > 1 else "")
                rows.append((name, shape, med_t, med_p, med_o, med_v))
                print(f"{name} {shape}: torch {med_t:.0f} ms, ORT as exported {med_p:.0f} ms, ORT {med_o:.0f} ms, "
                      f"OpenVINO {med_v or 0:.0f} ms", flush=True)
            be.close()
            plain.close()
            if ov:
                ov.close()
    lines = [
        "# CPU latency: PyTorch eager vs ONNX Runtime and OpenVINO",
        "",
        f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} by `python benchmarks/cpu_latency.py "
        f"--runs {args.runs} --threads {args.threads}`.",
        f"Machine: {cpu_name()}, {os.cpu_count()} cores visible; {args.threads} threads for both runtimes. "
        f"torch {torch.__version__}, onnxruntime {ort.__version__}, openvino {module_version('openvino')} "
        "(FP32: INFERENCE_PRECISION_HINT f32).",
        f"Batch 1 unless noted, square inputs; median of {args.runs} runs after {args.warmup} warm-up runs. "
        "ONNX: opset 17, "
        "onnxslim-simplified, ORT graph optimisation level ALL.",
        "ORT as exported: the file as it is. ORT (ftrt): as `OrtBackend` loads it by default — "
        + "; ".join(f"{k}: {v}" for k, v in layout_notes.items()) + ".",
        "",
        "| model | input | torch eager (ms) | ORT as exported (ms) | ORT (ftrt) (ms) | ORT speed-up | "
        "OpenVINO CPU (ms) | OpenVINO speed-up |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, shape, t, p, o, v in rows:
        ov_cols = f"{v:.0f} | {t / v:.2f}x" if v else "- | -"
        lines.append(f"| {name} | {shape} | {t:.0f} | {p:.0f} | {o:.0f} | {t / o:.2f}x | {ov_cols} |")
    write_report(args.out, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
