"""Backend registry: ``open_backend(name, model)`` with names auto, ort, ort-cuda, ort-trt, trt, torch,
torch-cuda and torch-cuda-fp16 (the PyTorch GPU baselines), openvino and openvino-bf16 (CPU).

``auto`` picks TensorRT for an ``.engine``/``.plan`` file, PyTorch (CPU) for ``.safetensors`` weights and
ONNX Runtime (CPU) otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ftrt.runtime.backends.base import Backend, BackendInfo, BackendUnavailable, ShapeProfile, TensorSpec
from ftrt.runtime.backends.table import BACKEND_TABLE, BACKENDS
from ftrt.runtime.loaders import CpuLayoutLoader, FileLoader
from ftrt.runtime.models import resolve_model


def make_backend(name: str, model: str, threads: int | None = None, **opts: Any) -> Backend:
    """Create (not open) a backend for ``model`` (a shipped name, a file path, or a diffusion pipeline
    directory, whose parts each run on ``name``; ``steps``, ``seed`` and ``refine`` in ``opts`` set its
    sampler)."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    from ftrt.runtime.diffusion import DiffusionBackend, is_pipeline_dir

    if is_pipeline_dir(model):
        if name.startswith("torch"):
            raise ValueError(f"{model}: a diffusion pipeline runs its ONNX parts (ort, openvino), not on PyTorch")
        return DiffusionBackend(model, backend=name, threads=threads, steps=opts.get("steps"),
                                seed=int(opts.get("seed") or 0), refine=bool(opts.get("refine")))
    if name == "trt" or (name == "auto" and Path(model).suffix in (".engine", ".plan")):
        from ftrt.runtime.backends.trt import TensorRTBackend

        return TensorRTBackend(resolve_model(model, "engine"), device_id=opts.get("device_id", 0),
                               cuda_graph=bool(opts.get("cuda_graph", False)))
    if name.startswith("openvino"):
        from ftrt.runtime.backends.openvino_backend import OpenVinoBackend

        return OpenVinoBackend(resolve_model(model, "onnx"), threads=threads,
                               precision="bf16" if name.endswith("bf16") else "fp32")
    if name == "auto" and Path(model).suffix == ".safetensors":
        name = "torch"
    if name.startswith("torch"):
        from ftrt.runtime.backends.torch_backend import TorchBackend

        device = "cpu" if name == "torch" else f"cuda:{opts.get('device_id', 0)}"
        return TorchBackend(resolve_model(model, "safetensors"), device=device, threads=threads,
                            half=name.endswith("fp16"), cuda_graph=bool(opts.get("cuda_graph", False)))
    from ftrt.runtime.backends.ort import OrtBackend

    provider = {"auto": "cpu", "ort": "cpu", "ort-cuda": "cuda", "ort-trt": "tensorrt"}[name]
    path = resolve_model(model, "onnx")
    # The CPU provider runs the graph laid out for its blocked kernels; GPU providers want the file as is.
    loader = CpuLayoutLoader(path) if provider == "cpu" else FileLoader(path)
    return OrtBackend(loader, provider=provider, threads=threads, engine_cache=opts.get("engine_cache"))


def open_backend(name: str, model: str, threads: int | None = None, **opts: Any) -> Backend:
    return make_backend(name, model, threads, **opts).open()


__all__ = ["BACKENDS", "BACKEND_TABLE", "Backend", "BackendInfo", "BackendUnavailable", "ShapeProfile", "TensorSpec",
           "make_backend", "open_backend", "Path"]
