"""`ftrt profile` on the shipped models, CPU backends: the table the README quotes.

    python benchmarks/profile_cpu.py [--shapes 256x256,512x512,1024x1024] [--iters 10] [--threads 2]

Writes ``benchmarks/results/profile_cpu.md`` (and ``.json``): torch eager vs ONNX Runtime, median and
tail latencies, throughput, ratio to torch, plus the end-to-end stage split on the CC0 sample.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import write_report  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="res-s", help="restorers, timed at every shape")
    ap.add_argument("--classifier", default="readability", help="timed at its own input size")
    ap.add_argument("--shapes", default="256x256,512x512,1024x1024")
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "profile_cpu.md"))
    args = ap.parse_args()

    from ftrt.shapes import parse_shape
    from ftrt.io import write_image
    from ftrt.profile import end_to_end, run_profile, to_markdown
    from ftrt.samples import retina

    models = [m for m in args.models.split(",") if m]
    backends = ["torch", "ort", "openvino", "openvino-bf16"]
    report = run_profile(models, backends, [parse_shape(s) for s in args.shapes.split(",")], warmup=args.warmup,
                         iters=args.iters, baseline="torch", threads=args.threads)
    if args.classifier:
        extra = run_profile([args.classifier], backends, [(224, 224)], warmup=args.warmup,
                            iters=args.iters, baseline="torch", threads=args.threads)
        report["results"] += extra["results"]
    with tempfile.TemporaryDirectory() as tmp:
        sample = write_image(Path(tmp) / "retina.png", retina(1024))
        report["end_to_end"] = [end_to_end("res-s", "ort", [str(sample)], threads=args.threads)]
    Path(args.out).with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# `ftrt profile` on the shipped models (CPU)",
        "",
        f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} by `python benchmarks/profile_cpu.py "
        f"--shapes {args.shapes} --iters {args.iters} --threads {args.threads}`. The classifier always runs at "
        "its 224 px input. End to end: the CC0 sample at 1024 px through `ftrt restore`'s pipeline.",
        "",
        to_markdown(report),
    ]
    write_report(args.out, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
