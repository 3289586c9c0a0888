"""Restorer training steps per second on this CPU: fp32 eager against bf16 autocast, channels_last,
torch.compile and thread counts (forward + loss + backward + Adam step, synthetic batch).

    python benchmarks/train_speed.py [--model res-s] [--batch 8] [--crop 192] [--steps 6] [--variants ...]

Writes benchmarks/results/train_speed.md. Each variant runs in a fresh process (torch's per-process state,
such as compiled code and thread pools, must not leak into the next variant).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cpu_name, invocation, write_report  # noqa: E402

VARIANTS = ["fp32", "fp32+cl", "bf16", "bf16+cl", "fp32+compile", "bf16+compile", "bf16+cl+compile", "fp32-1thread"]


def worker(variant: str, model_name: str, batch: int, crop: int, steps: int, warmup: int) -> dict[str, float]:
    import torch

    from ftrt.models import build_model
    from ftrt.models.registry import preset_kwargs
    from ftrt.training.losses import edge_loss, pixel_loss

    torch.set_num_threads(1 if variant.endswith("1thread") else 2)
    torch.manual_seed(0)
    heads = {"affine_head": True} if model_name.startswith("res-") else {}  # the DenseUNet presets' colour head
    model = build_model(model_name, **preset_kwargs(model_name, **heads)).train()
    fmt = torch.channels_last if "+cl" in variant else torch.contiguous_format
    model = model.to(memory_format=fmt)
    step_model = torch.compile(model) if "compile" in variant else model
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.rand(batch, 3, crop, crop).to(memory_format=fmt)
    y = (x * 0.9 + 0.05).contiguous(memory_format=fmt)
    bf16 = variant.startswith("bf16")

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            pred = step_model(x)
        pred = pred.float()
        loss = pixel_loss(pred, y) + 0.5 * edge_loss(pred, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    t0 = time.perf_counter()
    for _ in range(warmup):
        step()
    first = time.perf_counter() - t0
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return {"median_s": statistics.median(times), "min_s": min(times), "warmup_s": first}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="res-s")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--crop", type=int, default=192)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--variants", nargs="+", default=VARIANTS, choices=VARIANTS)
    ap.add_argument("--out", default="benchmarks/results/train_speed.md")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(worker(a.worker, a.model, a.batch, a.crop, a.steps, a.warmup)))
        return
    rows = {}
    for v in a.variants:
        cmd = [sys.executable, __file__, "--worker", v, "--model", a.model, "--batch", str(a.batch),
               "--crop", str(a.crop), "--steps", str(a.steps), "--warmup", str(a.warmup)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            rows[v] = {"error": (r.stderr.strip().splitlines() or ["failed"])[-1]}
        else:
            rows[v] = json.loads(r.stdout.strip().splitlines()[-1])
        print(v, rows[v], flush=True)
    base = rows.get("fp32", {}).get("median_s")
    lines = [
        "# Restorer training step speed on the CPU",
        "",
        f"Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `{invocation()}` on {cpu_name()}.",
        f"Model {a.model}{' (affine head)' if a.model.startswith('res-') else ''}, batch {a.batch}, crop {a.crop}x{a.crop}; one step = forward, SmoothL1 +"
        " edge loss, backward, Adam. Median of"
        f" {a.steps} steps after {a.warmup} warm-up steps, each variant in a fresh process, 2 threads unless named.",
        "",
        "| variant | s / step | steps / s | vs fp32 eager | first steps (s) |",
        "|---|---:|---:|---:|---:|",
    ]
    for v, r in rows.items():
        if "error" in r:
            lines.append(f"| {v} | failed: {r['error']} | | | |")
            continue
        ratio = f"{base / r['median_s']:.2f}x" if base else "-"
        lines.append(f"| {v} | {r['median_s']:.3f} | {1 / r['median_s']:.2f} | {ratio} | {r['warmup_s']:.1f} |")
    print(write_report(a.out, lines))


if __name__ == "__main__":
    main()
