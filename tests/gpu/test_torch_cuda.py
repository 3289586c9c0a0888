"""The PyTorch GPU baselines (torch-cuda, FP16, CUDA graphs) and their device-side timing.
Runs wherever PyTorch sees a CUDA GPU; skipped elsewhere with the reason."""

from __future__ import annotations

import numpy as np
import pytest

from ftrt.metrics import psnr
from ftrt.runtime import open_backend

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu]
if not torch.cuda.is_available():
    pytestmark.append(pytest.mark.skip(reason="PyTorch sees no CUDA GPU"))


def _x() -> np.ndarray:
    return np.random.default_rng(0).uniform(size=(1, 3, 96, 128)).astype(np.float32)


def test_torch_cuda_matches_cpu_and_times_on_the_device() -> None:
    with open_backend("torch", "res-s") as cpu:
        ref = cpu.run(_x())
    with open_backend("torch-cuda", "res-s") as gpu:
        out = gpu.run(_x())
        assert set(gpu.last_timing) == {"h2d", "compute", "d2h"} and gpu.last_timing["compute"] > 0
        assert (gpu.gpu_memory_mb() or 0) > 0
    assert np.abs(out - ref).max() < 1e-3


def test_fp16_and_cuda_graph_agree_with_eager() -> None:
    with open_backend("torch-cuda", "res-s") as eager:
        ref = eager.run(_x())
    with open_backend("torch-cuda", "res-s", cuda_graph=True) as graph:
        out1, out2 = graph.run(_x()), graph.run(_x())  # capture, then replay
    with open_backend("torch-cuda-fp16", "res-s") as half:
        assert half.info.precision == "fp16"
        assert psnr(np.clip(half.run(_x()), 0, 1), np.clip(ref, 0, 1)) > 40
    assert np.abs(out1 - ref).max() < 1e-4 and np.array_equal(out1, out2)


def test_profile_reports_gpu_cells() -> None:
    from ftrt.profile import run_profile

    rep = run_profile(["res-s"], ["torch", "torch-cuda", "torch-cuda+graph", "torch-cuda-fp16"], [(256, 256)],
                      warmup=2, iters=5)
    gpu = [r for r in rep["results"] if r["backend"] != "torch"]
    assert all(r["timing"] == "cuda events" and r["device_ms"]["compute"]["median"] > 0 for r in gpu)
    assert all(r["gpu_memory_mb"] for r in gpu)
