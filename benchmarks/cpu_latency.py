"""CPU latency: PyTorch eager vs ONNX Runtime (and OpenVINO) for the restorer presets and the readability classifier.

ONNX Runtime runs twice: the file as exported, and as ftrt's ORT backend loads it by default
(grouped convs laid out for the NCHWc kernels and the decoder's upsampling convs run at low
resolution, ftrt/runtime/cpu_layout.py).

    python benchmarks/cpu_latency.py [--models res-s res-l readability] [--sizes 256 512 1024] [--runs 5] [--rounds 3]

The classifier runs at its fixed input side, batch 1 and 8, whatever ``--sizes`` says.

Each cell: ``--warmup`` untimed runs, then the median of ``--runs`` timed runs, batch 1.
``--rounds R`` (default 3) measures every cell R times, the runtimes taking turns in blocks of ``--runs``
(torch, ORT as exported, ORT, OpenVINO; then again), so that this machine's drift of 10-25 %
between minutes lands on all of them; the table then gives the median of all R x runs timings
and the lowest and highest speed-up of a single round.
Weights are the shipped ones where they exist (speed does not depend on their values).
Writes ``benchmarks/results/cpu_latency.md``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import cpu_name, invocation, module_version, time_ms, write_report  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["res-s", "res-l", "readability"])
    ap.add_argument("--sizes", nargs="+", type=int, default=[256, 512, 1024])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3, help="measure each cell this many times, runtimes in turn")
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
                side = int(getattr(model, "input_side"))  # a ReadabilityNet attribute; mypy sees nn.Module
                shapes = [(1, side), (8, side)]
            else:
                shapes = [(1, size) for size in args.sizes]
            for batch, size in shapes:
                x = np.random.default_rng(0).uniform(size=(batch, 3, size, size)).astype(np.float32)
                xt = torch.from_numpy(x)

                def torch_run() -> object:
                    with torch.inference_mode():
                        return model(xt)

                runners = {"torch": torch_run, "plain": lambda: plain.run(x), "ort": lambda: be.run(x)}
                if ov:
                    runners["ov"] = lambda: ov.run(x)
                rounds = measure_rounds(runners, args.rounds, args.warmup, args.runs)
                med = {k: statistics.median(v for r in rounds for v in r[k]) for k in runners}
                med_t, med_p, med_o, med_v = med["torch"], med["plain"], med["ort"], med.get("ov")
                per_round = [statistics.median(r["torch"]) / statistics.median(r["ort"]) for r in rounds]
                shape = f"{size}x{size}" + (f", batch {batch}" if batch > 1 else "")
                rows.append((name, shape, med_t, med_p, med_o, med_v, min(per_round), max(per_round)))
                print(f"{name} {shape}: torch {med_t:.0f} ms, ORT as exported {med_p:.0f} ms, ORT {med_o:.0f} ms, "
                      f"OpenVINO {med_v or 0:.0f} ms; ORT speed-up per round "
                      + ", ".join(f"{r:.2f}x" for r in per_round), flush=True)
            be.close()
            plain.close()
            if ov:
                ov.close()
    lines = [
        "# CPU latency: PyTorch eager vs ONNX Runtime and OpenVINO",
        "",
        f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} by `{invocation()}`.",
        f"Machine: {cpu_name()}, {os.cpu_count()} cores visible; {args.threads} threads for both runtimes. "
        f"torch {torch.__version__}, onnxruntime {ort.__version__}, openvino {module_version('openvino')} "
        "(FP32: INFERENCE_PRECISION_HINT f32).",
        f"Batch 1 unless noted, square inputs; median of {args.runs} runs after {args.warmup} warm-up runs"
        + (f", in each of {args.rounds} rounds (runtimes in turn; the median is over all "
           f"{args.rounds * args.runs} runs, the range is the lowest and highest ORT speed-up of one round). "
           if args.rounds > 1 else ". ")
        + "ONNX: opset 17, onnxslim-simplified, ORT graph optimisation level ALL.",
        "ORT as exported: the file as it is. ORT (ftrt): as `OrtBackend` loads it by default — "
        + "; ".join(f"{k}: {v}" for k, v in layout_notes.items()) + ".",
        "",
        "| model | input | torch eager (ms) | ORT as exported (ms) | ORT (ftrt) (ms) | ORT speed-up | "
        + ("ORT speed-up, rounds | " if args.rounds > 1 else "") + "OpenVINO CPU (ms) | OpenVINO speed-up |",
        "|---|---:|---:|---:|---:|---:|" + ("---:|" if args.rounds > 1 else "") + "---:|---:|",
    ]
    for name, shape, t, p, o, v, lo, hi in rows:
        ov_cols = f"{v:.0f} | {t / v:.2f}x" if v else "- | -"
        spread = f"{lo:.2f}-{hi:.2f}x | " if args.rounds > 1 else ""
        lines.append(f"| {name} | {shape} | {t:.0f} | {p:.0f} | {o:.0f} | {t / o:.2f}x | {spread}{ov_cols} |")
    write_report(args.out, lines)
    return 0


def measure_rounds(runners: dict[str, Callable[[], object]], rounds: int, warmup: int,
                   runs: int) -> list[dict[str, list[float]]]:
    """Per round, each runner's timings (ms); runners take turns so slow minutes hit all of them."""
    return [{k: time_ms(fn, warmup, runs) for k, fn in runners.items()} for _ in range(rounds)]


if __name__ == "__main__":
    sys.exit(main())
