"""``ftrt profile``: latency of models x backends x shapes in one run, with ratios to a baseline.

Timing: ``warmup`` untimed runs, then ``iters`` timed runs of ``backend.run``
(which returns host memory, so GPU work is finished when the clock stops);
per-iteration samples are summarised as min/mean/median/p90/p95/p99/max/std.
GPU backends also report each run's device-side split (host-to-device copy,
compute, device-to-host copy): CUDA events for TensorRT and torch-cuda,
synchronous IO-binding steps for ONNX Runtime's GPU providers. A backend name
ending in ``+graph`` (``trt+graph``, ``torch-cuda+graph``) replays CUDA graphs.
Ratios to a baseline cell (default: torch eager on the same model and shape)
are what stay comparable on a noisy machine. A backend that is not installed
becomes a row saying so, never a crash.
"""

from __future__ import annotations

import os
import platform
import resource
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ftrt import __version__

PERCENTILES = (90, 95, 99)


def summarize(samples_ms: list[float]) -> dict[str, float]:
    """min, mean, median, p90, p95, p99, max and standard deviation of per-iteration times (ms)."""
    if not samples_ms:
        raise ValueError("no timing samples")
    a = np.asarray(samples_ms, dtype=np.float64)
    out = {"min": float(a.min()), "mean": float(a.mean()), "median": float(np.median(a))}
    out.update({f"p{q}": float(np.percentile(a, q)) for q in PERCENTILES})
    out.update({"max": float(a.max()), "std": float(a.std(ddof=1)) if a.size > 1 else 0.0})
    return {k: round(v, 3) for k, v in out.items()}


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB, macOS bytes)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(r / 1024 / (1024 if platform.system() == "Darwin" else 1), 1)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    cpu = cpu_name()
    libs: dict[str, str | None] = {"ftrt": __version__, "numpy": np.__version__}
    for mod in ("onnxruntime", "torch", "tensorrt", "cv2"):
        try:
            libs[mod] = str(__import__(mod).__version__)
        except Exception:  # noqa: BLE001 - absent, or present but broken (a stub without libnvinfer)
            libs[mod] = None
    from ftrt.engine.host import gpu_info

    name, cc, driver = gpu_info()
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "gpu": {"name": name, "compute_capability": cc, "driver": driver} if name else None, "libraries": libs}


@dataclass
class Cell:
    model: str
    backend: str
    precision: str
    shape: str
    batch: int
    ms: dict[str, float] | None = None
    throughput_ips: float | None = None
    megapixels_per_s: float | None = None
    ratio_to_baseline: float | None = None
    peak_rss_mb: float | None = None
    gpu_memory_mb: float | None = None
    device_ms: dict[str, dict[str, float]] | None = None  # h2d / compute / d2h summaries (GPU backends)
    timing: str = "host clock"
    graph: str = ""  # load-time graph changes the backend made (ORT CPU layout), "" when none reported
    error: str | None = None
    samples_ms: list[float] = field(default_factory=list, repr=False)


def time_calls(fn: Callable[[], Any], warmup: int, iters: int) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def _input_for(backend: Any, h: int, w: int, batch: int) -> np.ndarray:
    side = int(backend.info.metadata.get("input_side", 0) or 0)
    if backend.info.metadata.get("model") == "readability" and side:
        h = w = side  # a classifier has one input size
    return np.random.default_rng(0).uniform(size=(batch, 3, h, w)).astype(np.float32)


def profile_cell(backend_name: str, model: str, shape: tuple[int, int], batch: int, warmup: int, iters: int,
                 threads: int | None = None) -> Cell:
    from ftrt.engine.sidecar import EngineMismatch
    from ftrt.runtime import BackendUnavailable, open_backend

    h, w = shape
    cell = Cell(model=Path(model).name, backend=backend_name, precision="?", shape=f"{h}x{w}", batch=batch)
    name, graph = (backend_name[:-len("+graph")], True) if backend_name.endswith("+graph") else (backend_name, False)
    try:
        be = open_backend(name, model, threads=threads, cuda_graph=graph)
    except (BackendUnavailable, EngineMismatch, FileNotFoundError, ValueError) as exc:
        cell.error = f"unavailable: {str(exc).splitlines()[0]}"
        return cell
    stages: dict[str, list[float]] = {}

    def call() -> None:
        be.run(x)
        for k, v in be.last_timing.items():
            stages.setdefault(k, []).append(v)

    try:
        cell.precision = be.info.precision
        cell.graph = be.info.graph
        x = _input_for(be, h, w, batch)
        cell.shape = f"{x.shape[2]}x{x.shape[3]}"
        cell.samples_ms = time_calls(call, warmup, iters)
        # Warm-up runs recorded stages too: keep the timed ones only.
        stages = {k: v[-iters:] for k, v in stages.items()}
        if stages:
            cell.device_ms = {k: summarize(v) for k, v in stages.items()}
            cell.timing = be.timing
        cell.gpu_memory_mb = _gpu_memory(be)
    except (ValueError, RuntimeError, MemoryError) as exc:
        cell.error = f"failed: {str(exc).splitlines()[0]}"
        return cell
    finally:
        be.close()
    cell.ms = summarize(cell.samples_ms)
    cell.throughput_ips = round(batch * 1e3 / cell.ms["median"], 3)
    cell.megapixels_per_s = round(cell.throughput_ips * x.shape[2] * x.shape[3] / 1e6, 3)
    cell.peak_rss_mb = peak_rss_mb()
    return cell


def process_gpu_memory_mb(pid: int | None = None) -> float | None:
    """This process's GPU memory as the driver reports it (nvidia-smi); None without a GPU or when the
    process is not listed (containers with their own PID namespace)."""
    import shutil
    import subprocess

    if shutil.which("nvidia-smi") is None:
        return None
    pid = os.getpid() if pid is None else pid
    try:
        out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_compute_apps(out, pid)


def parse_compute_apps(text: str, pid: int) -> float | None:
    total, found = 0.0, False
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[0] == str(pid):
            try:
                total += float(parts[1])
                found = True
            except ValueError:
                continue
    return total if found else None


def _gpu_memory(be: Any) -> float | None:
    if not str(be.info.device).startswith("cuda"):
        return None
    own = be.gpu_memory_mb()
    return round(own if own is not None else (process_gpu_memory_mb() or 0.0), 1) or None


def run_profile(models: list[str], backends: list[str], shapes: list[tuple[int, int]], batch: int = 1,
                warmup: int = 3, iters: int = 20, baseline: str = "torch", threads: int | None = None,
                progress: Callable[[Cell], None] | None = None) -> dict[str, Any]:
    """The matrix models x backends x shapes; each cell's ratio is baseline median / cell median."""
    cells = []
    for model in models:
        for shape in shapes:
            row = []
            for backend in backends:
                cell = profile_cell(backend, model, shape, batch, warmup, iters, threads)
                row.append(cell)
                if progress:
                    progress(cell)
            base = next((c for c in row if c.backend == baseline and c.ms), None)
            for c in row:
                if base is not None and c.ms:
                    c.ratio_to_baseline = round(base.ms["median"] / c.ms["median"], 3)
            cells += row
    return {"machine": machine_info(), "baseline": baseline,
            "settings": {"batch": batch, "warmup": warmup, "iters": iters, "threads": threads},
            "results": [{k: v for k, v in asdict(c).items() if k != "samples_ms"} for c in cells]}


def to_markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    gpu = m["gpu"]["name"] if m.get("gpu") else "none"
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores; GPU: {gpu}; "
             + ", ".join(f"{k} {v}" for k, v in m["libraries"].items() if v),
             f"Batch {report['settings']['batch']}, {report['settings']['warmup']} warm-up + "
             f"{report['settings']['iters']} timed runs per cell; ratio = {report['baseline']} median / cell median.",
             "",
             "| model | backend | precision | input | median ms | p90 | p99 | std | images/s | MP/s | vs baseline |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in report["results"]:
        if r["ms"] is None:
            lines.append(f"| {r['model']} | {r['backend']} | - | {r['shape']} | {r['error']} | | | | | | |")
            continue
        ms = r["ms"]
        ratio = f"{r['ratio_to_baseline']:.2f}x" if r["ratio_to_baseline"] else "-"
        lines.append(f"| {r['model']} | {r['backend']} | {r['precision']} | {r['shape']} | {ms['median']:.1f} | "
                     f"{ms['p90']:.1f} | {ms['p99']:.1f} | {ms['std']:.1f} | {r['throughput_ips']:.2f} | "
                     f"{r['megapixels_per_s']:.2f} | {ratio} |")
    part_rows = [r for r in report["results"] if r.get("device_ms") and "denoise" in r["device_ms"]]
    if part_rows:
        parts = ("restorer", "features", "encode", "denoise", "denoise_per_step", "decode")
        lines += ["", "Diffusion pipelines, per part (median ms; denoise is all steps together) and peak memory:", "",
                  "| model | backend | input | steps | " + " | ".join(parts) + " | peak RSS MiB |",
                  "|---|---|---|---:|" + "---:|" * len(parts) + "---:|"]
        for r in part_rows:
            d = r["device_ms"]
            lines.append(f"| {r['model']} | {r['backend']} | {r['shape']} | {d['steps']['median']:.0f} | "
                         + " | ".join(f"{d[k]['median']:.1f}" if k in d else "-" for k in parts)
                         + f" | {r['peak_rss_mb']:.0f} |")
    gpu_rows = [r for r in report["results"] if r.get("device_ms") and "denoise" not in r["device_ms"]]
    if gpu_rows:
        lines += ["", "Device-side split (median ms) and GPU memory:", "",
                  "| model | backend | precision | input | timing | h2d | compute | d2h | GPU MiB |",
                  "|---|---|---|---|---|---:|---:|---:|---:|"]
        for r in gpu_rows:
            d = r["device_ms"]
            mem = f"{r['gpu_memory_mb']:.0f}" if r.get("gpu_memory_mb") else "-"
            lines.append(f"| {r['model']} | {r['backend']} | {r['precision']} | {r['shape']} | {r['timing']} | "
                         + " | ".join(f"{d[k]['median']:.2f}" if k in d else "-" for k in ("h2d", "compute", "d2h"))
                         + f" | {mem} |")
    notes = sorted({f"{r['model']} on {r['backend']}: {r['graph']}" for r in report["results"]
                    if r.get("graph") and r["graph"] != "as exported"})
    if notes:
        lines += ["", "Graph as run: " + "; ".join(notes) + "."]
    for e in report.get("end_to_end", []):
        if "error" in e:
            lines.append(f"\nEnd to end, {e['model']} on {e['backend']}: {e['error']}")
            continue
        stages = ", ".join(f"{k} {v['median']:.1f}" for k, v in e["stages_ms"].items())
        lines.append(f"\nEnd to end, {e['model']} on {e['backend']}, {e['images']} images, median ms per stage: "
                     f"{stages}")
    return "\n".join(lines) + "\n"


def to_csv(report: dict[str, Any]) -> str:
    cols = ["model", "backend", "precision", "shape", "batch", "median", "min", "mean", "p90", "p95", "p99", "max",
            "std", "throughput_ips", "megapixels_per_s", "ratio_to_baseline", "error"]
    rows = [",".join(cols)]
    for r in report["results"]:
        ms = r["ms"] or {}
        vals = [r["model"], r["backend"], r["precision"], r["shape"], r["batch"]]
        vals += [ms.get(k, "") for k in ("median", "min", "mean", "p90", "p95", "p99", "max", "std")]
        vals += [r["throughput_ips"] or "", r["megapixels_per_s"] or "", r["ratio_to_baseline"] or "",
                 (r["error"] or "").replace(",", ";")]
        rows.append(",".join(str(v) for v in vals))
    return "\n".join(rows) + "\n"


def plot(report: dict[str, Any], path: str | Path) -> Path:
    """Latency against megapixels per (backend, precision); needs matplotlib (the ``plot`` extra)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    series: dict[str, list[tuple[float, float]]] = {}
    for r in report["results"]:
        if r["ms"]:
            h, w = (int(v) for v in r["shape"].split("x"))
            series.setdefault(f"{r['model']} {r['backend']} {r['precision']}", []).append(
                (h * w * r["batch"] / 1e6, r["ms"]["median"]))
    for label, pts in sorted(series.items()):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
    ax.set_xlabel("megapixels per call")
    ax.set_ylabel("median latency (ms)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def end_to_end_all(models: list[str], backends: list[str], images: list[str],
                   threads: int | None = None) -> list[dict[str, Any]]:
    """:func:`end_to_end` for every model and backend; a backend that cannot run is a row saying why."""
    rows = []
    for m in models:
        for b in backends:
            try:
                rows.append(end_to_end(m, b, images, threads))
            except Exception as exc:  # noqa: BLE001 - one unavailable backend must not hide the others
                rows.append({"model": m, "backend": b, "error": str(exc).splitlines()[0]})
    return rows


def end_to_end(model: str, backend_name: str, images: list[str], threads: int | None = None,
               max_side: int | None = None) -> dict[str, Any]:
    """The real pipeline on real images, split by stage: decode, preprocess, infer, postprocess, encode."""
    import tempfile

    from ftrt.io import collect_inputs, read_image, write_image
    from ftrt.runtime import open_pipeline

    stages: dict[str, list[float]] = {}
    with open_pipeline(model, backend_name, threads=threads, max_side=max_side) as opened, \
            tempfile.TemporaryDirectory() as tmp:
        pipe, be = opened.pipeline, opened.backend
        device = _DeviceStages(be)
        for path in collect_inputs(images):
            t0 = time.perf_counter()
            img, depth = read_image(path)
            t1 = time.perf_counter()
            device.reset()
            res = pipe.restore(img)
            t2 = time.perf_counter()
            write_image(Path(tmp) / f"{path.stem}.png", res.image, depth)
            t3 = time.perf_counter()
            for k, v in {"decode": (t1 - t0) * 1e3, **split_infer(res.ms, device.totals),
                         "encode": (t3 - t2) * 1e3}.items():
                stages.setdefault(k, []).append(v)
    return {"model": Path(model).name, "backend": backend_name, "images": len(stages.get("decode", [])),
            "stages_ms": {k: summarize(v) for k, v in stages.items()}}


class _DeviceStages:
    """Sums a GPU backend's per-run h2d / compute / d2h over one image (tiled images run several times)."""

    def __init__(self, be: Any) -> None:
        self.totals: dict[str, float] = {}
        run = be.run

        def counted(batch: np.ndarray) -> np.ndarray:
            out = run(batch)
            for k, v in be.last_timing.items():
                self.totals[k] = self.totals.get(k, 0.0) + v
            return out

        be.run = counted

    def reset(self) -> None:
        self.totals = {}


def split_infer(ms: dict[str, float], device: dict[str, float]) -> dict[str, float]:
    """The pipeline's stages with ``infer`` split into host-to-device, compute and device-to-host where the
    backend measured them; what is left of ``infer`` is host work around the runs (``infer_host``). On
    CPU backends there are no copies: ``infer`` is all compute."""
    if device:
        split = {k: device.get(k, 0.0) for k in ("h2d", "compute", "d2h")}
        split["infer_host"] = max(0.0, ms.get("infer", 0.0) - sum(device.values()))
    else:
        split = {"compute": ms.get("infer", 0.0)}
    out: dict[str, float] = {}
    for k, v in ms.items():  # keep the pipeline's order, the split where "infer" stood
        out.update(split if k == "infer" else {k: v})
    return out
