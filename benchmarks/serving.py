"""Camera clients against `ftrt serve`: throughput, latency percentiles, errors, outputs equal to local.

    python benchmarks/serving.py --serving-env .venv-serving [--clients 1 4] [--instances 1 2] [--images 6]
                                 [--side 768] [--out benchmarks/results/serving.md]

For each instance count a fresh `ftrt serve` (fundus_restore, the default restorer, loopback ports); for each
client count, that many threads each send --images photographs (the CC0 sample at several exposures, --side
px) over grpc, one request at a time, as cameras do. Every output is compared with local processing (the
same model on ONNX Runtime in this process): must be identical. Dynamic batching needs the raw networks on
the ONNX Runtime or TensorRT backend, which the PyPI server lacks: not measured here (docs/serving.md).
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import cpu_name, invocation, write_report  # noqa: E402

from ftrt.io.images import to_uint8  # noqa: E402
from ftrt.runtime import open_pipeline  # noqa: E402
from ftrt.serving.client import RemoteRestorer  # noqa: E402
from ftrt.runtime.models import DEFAULT_MODEL  # noqa: E402
from ftrt.serving.server import free_ports, start_serve  # noqa: E402


def photos(n: int, side: int) -> list[np.ndarray]:
    from skimage import data

    base = cv2.resize(data.retina(), (side, side), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    # 8-bit, as a camera delivers them (and as the client sends them), so local processing sees the same input.
    return [to_uint8(np.clip(base * (0.7 + 0.5 * i / max(1, n - 1)), 0, 1)).astype(np.float32) / 255 for i in range(n)]


# Repository layouts (ftrt triton export options): the network inside fundus_restore, or called through BLS in
# the raw model beside it (served by ftrt's Python model here: nvidia-pytriton has no onnxruntime backend),
# with or without Triton's dynamic batching of the raw networks.
LAYOUTS = {"inprocess": [], "bls": ["--network", "bls", "--raw-backend", "python"],
           "bls+batching": ["--network", "bls", "--raw-backend", "python", "--dynamic-batching"]}


def start(env: str, instances: int, ports: list[int], layout: str = "inprocess") -> subprocess.Popen:
    return start_serve(["--serving-env", env, "--instances", str(instances), "--grpc-port", str(ports[1]),
                        "--metrics-port", str(ports[2]), *LAYOUTS[layout]], ports[0])


def restart_after(delay: float, env: str, instances: int, ports: list[int], layout: str,
                  procs: list[subprocess.Popen]) -> threading.Thread:
    """Stop the running server ``delay`` s from now and start it again on the same ports (clients retry)."""
    def run() -> None:
        time.sleep(delay)
        procs[0].send_signal(signal.SIGTERM)
        procs[0].wait(timeout=120)
        procs[0] = start(env, instances, ports, layout)

    t = threading.Thread(target=run)
    t.start()
    return t


def run_clients(url: str, imgs: list[np.ndarray], clients: int, local: list[np.ndarray]) -> dict[str, float]:
    lat: list[float] = []
    errors = mismatches = 0
    lock = threading.Lock()

    def client(k: int) -> None:
        nonlocal errors, mismatches
        remote = RemoteRestorer(url, wait=120)
        try:
            for i, img in enumerate(imgs):
                t0 = time.perf_counter()
                try:
                    out, _, _ = remote(img)
                except Exception as exc:  # noqa: BLE001 - counted and shown, the benchmark goes on
                    print(f"client {k}, photograph {i}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
                    with lock:
                        errors += 1
                    continue
                dt = time.perf_counter() - t0
                with lock:
                    lat.append(dt)
                    mismatches += int(not np.array_equal(to_uint8(out), local[i]))
        finally:
            remote.close()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    a = np.array(lat) * 1e3 if lat else np.array([np.nan])
    return {"clients": clients, "requests": clients * len(imgs), "errors": errors, "mismatches": mismatches,
            "throughput": len(lat) / wall, "p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)),
            "p99": float(np.percentile(a, 99))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--serving-env", required=True)
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--instances", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--images", type=int, default=6)
    ap.add_argument("--side", type=int, default=768)
    ap.add_argument("--layouts", nargs="+", default=["inprocess"], choices=list(LAYOUTS))
    ap.add_argument("--restart", action="store_true",
                    help="also: the largest client count with the server stopped and restarted mid-run")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "serving.md"))
    a = ap.parse_args()
    imgs = photos(a.images, a.side)
    with open_pipeline(DEFAULT_MODEL, "ort", gate=True) as opened:
        local = [to_uint8(opened.pipeline.restore(img).image) for img in imgs]
    rows = []
    for layout in a.layouts:
        for inst in a.instances:
            ports = free_ports(3)
            procs = [start(a.serving_env, inst, ports, layout)]
            try:
                cases = [(c, False) for c in a.clients] + ([(max(a.clients), True)] if a.restart else [])
                for c, restart in cases:
                    t = restart_after(2.0, a.serving_env, inst, ports, layout, procs) if restart else None
                    r = run_clients(f"grpc://127.0.0.1:{ports[1]}", imgs, c, local)
                    if t is not None:
                        t.join()
                    rows.append({"layout": layout, "instances": inst, "restart": restart, **r})
                    print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
            finally:
                procs[0].send_signal(signal.SIGTERM)
                procs[0].wait(timeout=120)
    lines = ["# Serving: camera clients against `ftrt serve`", "",
             f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} by `{invocation()}` on {cpu_name()} "
             f"(2 cores, no GPU): Triton 2.51 from nvidia-pytriton 0.7.0 (Python backend only), `fundus_restore` "
             f"running the default restorer and the readability gate on ONNX Runtime CPU; {a.images} photographs of "
             f"{a.side} px per client, sent over grpc one at a time; every output compared with local processing. "
             "Layouts: `inprocess` (the network inside fundus_restore), `bls` (fundus_restore calls the raw "
             "restorer and gate through BLS), `bls+batching` (the same, with Triton's dynamic batching on the raw "
             "networks). Restart: the server stopped 2 s into the run and started again on the same ports while the "
             "clients keep sending (they retry with back-off).", "",
             "| layout | instances | clients | restart | requests | errors | outputs not identical | photographs/s | "
             "p50 ms | p90 ms | p99 ms |",
             "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['layout']} | {r['instances']} | {r['clients']} | {'yes' if r['restart'] else '-'} | "
                     f"{r['requests']} | {r['errors']} | {r['mismatches']} | {r['throughput']:.2f} | {r['p50']:.0f} | "
                     f"{r['p90']:.0f} | {r['p99']:.0f} |")
    lines += ["", "Restart rows: every photograph was answered and identical to local processing although the server "
              "went away mid-run; their p90/p99 contain the gap. On 2 cores a second instance shares the same cores "
              "(it can only overlap one request's Python pre/post-processing with another's inference), and the BLS "
              "hop costs little next to the network; dynamic batching has little to batch with one fundus_restore "
              "instance sending one request at a time. `ftrt watch --server` across a restart (nothing lost, nothing "
              "twice) is the test `tests/serving/test_serve.py::test_watch_through_a_restarting_server_loses_nothing`."]
    write_report(a.out, lines)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
