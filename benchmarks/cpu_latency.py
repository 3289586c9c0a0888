"""CPU latency: PyTorch eager vs ONNX Runtime (and OpenVINO) for the restorer presets and the readability classifier.

ONNX Runtime runs twice: the file as exported, and as ftrt's ORT backend loads it by default
(grouped convs laid out for the NCHWc kernels and the decoder's upsampling convs run at low
resolution, ftrt/onnx/cpu_layout.py).

    python benchmarks/cpu_latency.py [--models res-s res-l readability] [--sizes 256 512 1024] [--runs 5] [--rounds 3]

The classifier runs at its fixed input side, batch 1 and 8, whatever ``--sizes`` says.

Each cell: ``--warmup`` untimed runs, then the median of ``--runs`` timed runs, batch 1.
Every block of timings runs in a process of its own (in one process, torch eager ran 5-15 %
slower once ONNX Runtime had run there). ``--rounds R`` (default 3) measures every cell R times,
the runtimes taking turns (torch, ORT as exported, ORT, OpenVINO; then again), so that this
machine's drift of 10-25 % between minutes lands on all of them; the table then gives the
median of all R x runs timings and the lowest and highest speed-up of a single round.
Weights are the shipped ones where they exist (speed does not depend on their values).
Writes ``benchmarks/results/cpu_latency.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import cpu_name, invocation, module_version, preset_model, time_ms, write_report  # noqa: E402


RUNTIMES = ("torch", "plain", "ort", "ov")  # torch eager, ORT as exported, ORT (ftrt), OpenVINO


def worker(args: argparse.Namespace) -> int:
    """Time one runtime on one cell in this process alone; print the timings (ms) and the graph note as JSON."""
    import numpy as np

    x = np.random.default_rng(0).uniform(size=(args.batch, 3, args.size, args.size)).astype(np.float32)
    graph = ""
    if args.worker == "torch":
        import torch

        torch.set_num_threads(args.threads)
        model = preset_model(args.model)[0]
        xt = torch.from_numpy(x)

        def run() -> object:
            with torch.inference_mode():
                return model(xt)
    else:
        from ftrt.runtime.backends import BackendUnavailable
        from ftrt.runtime.backends.openvino_backend import OpenVinoBackend
        from ftrt.runtime.backends.ort import OrtBackend
        from ftrt.runtime.loaders import CpuLayoutLoader

        onnx_file = Path(args.onnx)
        try:
            backend = (OpenVinoBackend(onnx_file, threads=args.threads) if args.worker == "ov" else
                       OrtBackend(CpuLayoutLoader(onnx_file) if args.worker == "ort" else onnx_file,
                                  threads=args.threads)).open()
        except BackendUnavailable as exc:
            print(json.dumps({"unavailable": str(exc)}))
            return 0
        graph = backend.info.graph

        def run() -> object:
            return backend.run(x)
    print(json.dumps({"ms": time_ms(run, args.warmup, args.runs), "graph": graph}))
    return 0


def measure(runtime: str, model: str, onnx_path: Path, batch: int, size: int, args: argparse.Namespace) -> dict:
    """One block of timings in a fresh process: runtimes in one process slow each other down (torch eager
    ran 5-15 % slower after ONNX Runtime had run in the same process, and slower with every round)."""
    cmd = [sys.executable, __file__, "--worker", runtime, "--model", model, "--onnx", str(onnx_path),
           "--batch", str(batch), "--size", str(size), "--runs", str(args.runs), "--warmup", str(args.warmup),
           "--threads", str(args.threads)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no error output"])[-1]
        raise SystemExit(f"{runtime} worker failed on {model} {size}x{size}: {last}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["res-s", "res-l", "readability"])
    ap.add_argument("--sizes", nargs="+", type=int, default=[256, 512, 1024])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3, help="measure each cell this many times, runtimes in turn")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "cpu_latency.md"))
    ap.add_argument("--worker", choices=RUNTIMES, help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--onnx", help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)

    import onnxruntime as ort
    import torch

    from ftrt.export import export_onnx

    rows = []
    layout_notes: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            model = preset_model(name)[0]
            onnx_path = Path(tmp) / f"{name}.onnx"
            export_onnx(model, onnx_path, preset=name, opset=17, check=False)
            if getattr(model, "task", "") == "readability":
                side = int(getattr(model, "input_side"))  # a ReadabilityNet attribute; mypy sees nn.Module
                shapes = [(1, side), (8, side)]
            else:
                shapes = [(1, size) for size in args.sizes]
            runtimes = list(RUNTIMES)
            for batch, size in shapes:
                rounds: list[dict[str, list[float]]] = []
                for _ in range(args.rounds):
                    got = {}
                    for runtime in list(runtimes):
                        result = measure(runtime, name, onnx_path, batch, size, args)
                        if "unavailable" in result:
                            print(f"OpenVINO column left empty: {result['unavailable']}", flush=True)
                            runtimes.remove(runtime)
                            continue
                        got[runtime] = result["ms"]
                        if runtime == "ort":
                            layout_notes[name] = result["graph"]
                    rounds.append(got)
                med = {k: statistics.median(v for r in rounds for v in r[k]) for k in runtimes}
                med_t, med_p, med_o, med_v = med["torch"], med["plain"], med["ort"], med.get("ov")
                per_round = [statistics.median(r["torch"]) / statistics.median(r["ort"]) for r in rounds]
                shape = f"{size}x{size}" + (f", batch {batch}" if batch > 1 else "")
                rows.append((name, shape, med_t, med_p, med_o, med_v, min(per_round), max(per_round)))
                print(f"{name} {shape}: torch {med_t:.0f} ms, ORT as exported {med_p:.0f} ms, ORT {med_o:.0f} ms, "
                      f"OpenVINO {med_v or 0:.0f} ms; per round torch / ORT: "
                      + ", ".join(f"{statistics.median(r['torch']):.0f} / {statistics.median(r['ort']):.0f} ms"
                                  for r in rounds), flush=True)
    lines = [
        "# CPU latency: PyTorch eager vs ONNX Runtime and OpenVINO",
        "",
        f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} by `{invocation()}`.",
        f"Machine: {cpu_name()}, {os.cpu_count()} cores visible; {args.threads} threads for both runtimes. "
        f"torch {torch.__version__}, onnxruntime {ort.__version__}, openvino {module_version('openvino')} "
        "(FP32: INFERENCE_PRECISION_HINT f32).",
        f"Batch 1 unless noted, square inputs; median of {args.runs} runs after {args.warmup} warm-up runs"
        + (f", in each of {args.rounds} rounds (runtimes in turn; the median is over all "
           f"{args.rounds * args.runs} runs, the range is the lowest and highest ORT speed-up of one round)"
           if args.rounds > 1 else "")
        + "; every block of runs in a fresh process of its own. "
        + "ONNX: opset 17, onnxslim-simplified, ORT graph optimisation level ALL.",
        "ORT as exported: the file as it is. ORT (ftrt): as `open_backend('ort', ...)` loads it (CPU layout passes) — "
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


if __name__ == "__main__":
    sys.exit(main())
