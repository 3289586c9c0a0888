"""PyTorch eager backend (reference and GPU baseline). torch is imported only when this backend opens.

On CUDA, ``half=True`` runs the model in FP16 and ``cuda_graph=True`` captures
one CUDA graph per input shape and replays it (the launch overhead of a dense
U-Net of many small kernels is what graphs remove). Stage times come from CUDA
events recorded around copy-in, compute and copy-out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ftrt.runtime.backends.base import Backend, BackendInfo, BackendUnavailable, TensorSpec, require_for_backend


class TorchBackend(Backend):
    def __init__(self, weights: str | Path, device: str = "cpu", threads: int | None = None, half: bool = False,
                 cuda_graph: bool = False) -> None:
        self.weights = str(weights)
        self.device = device
        self.threads = threads
        self.half = half
        self.cuda_graph = cuda_graph
        self.model: Any = None
        self._graphs: dict[tuple[int, ...], tuple[Any, Any, Any]] = {}
        self.info = BackendInfo(name="torch" if device == "cpu" else "torch-cuda", device=device,
                                precision="fp16" if half else "fp32")
        if device.startswith("cuda"):
            self.timing = "cuda events"

    def open(self) -> "TorchBackend":
        torch = require_for_backend("torch", "torch")
        from ftrt.models.pretrained import load_model

        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendUnavailable("torch-cuda: PyTorch sees no CUDA GPU (a CPU-only wheel, or no driver)")
        if (self.half or self.cuda_graph) and not self.device.startswith("cuda"):
            raise BackendUnavailable("torch: FP16 and CUDA graphs are for the torch-cuda backend")
        if self.threads:
            torch.set_num_threads(self.threads)
        model, meta = load_model(self.weights)
        self.model = model.to(self.device).eval()
        if self.half:
            self.model.half()
        self.info.metadata = {"pad_multiple": str(getattr(model, "pad_multiple", 1)), "min_side": "32",
                              "work_side": str(meta.get("work_side") or 0),
                              "preset": str(meta.get("preset")), "card_id": str(meta.get("card_id", ""))}
        if getattr(model, "task", "") == "readability":
            side = str(model.input_side)
            labels = getattr(model, "labels")  # nn.Module types its attributes Tensor | Module
            self.info.metadata.update(model="readability", labels=",".join(labels), input_side=side,
                                      min_side=side, thresholds=json.dumps(meta.get("thresholds", {})))
        if self.device.startswith("cuda"):
            self.info.providers = [torch.cuda.get_device_name(self.device)]
            torch.cuda.reset_peak_memory_stats(self.device)
        return self

    @property
    def input_spec(self) -> TensorSpec:
        return TensorSpec("image", ("batch", 3, "height", "width"), "tensor(float)")

    def run(self, batch: np.ndarray) -> np.ndarray:
        import torch

        if self.model is None:
            self.open()
        host = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        with torch.inference_mode():
            if not self.device.startswith("cuda"):
                return self.model(host).float().numpy()  # type: ignore[no-any-return]
            ev = [torch.cuda.Event(enable_timing=True) for _ in range(4)]
            ev[0].record()
            x = host.to(self.device)
            x = x.half() if self.half else x
            ev[1].record()
            y = self._graph_run(x) if self.cuda_graph else self.model(x)
            ev[2].record()
            out = y.float().cpu()
            ev[3].record()
            ev[3].synchronize()
        self.last_timing = {"h2d": ev[0].elapsed_time(ev[1]), "compute": ev[1].elapsed_time(ev[2]),
                            "d2h": ev[2].elapsed_time(ev[3])}
        return out.numpy()  # type: ignore[no-any-return]

    def _graph_run(self, x: Any) -> Any:
        import torch

        key = tuple(x.shape)
        if key not in self._graphs:
            static_in = x.clone()
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):  # warm-up off the capture stream, as capture requires
                for _ in range(2):
                    self.model(static_in)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_out = self.model(static_in)
            self._graphs[key] = (graph, static_in, static_out)
        graph, static_in, static_out = self._graphs[key]
        static_in.copy_(x)
        graph.replay()
        return static_out

    def gpu_memory_mb(self) -> float | None:
        if self.model is None or not self.device.startswith("cuda"):
            return None
        import torch

        return float(torch.cuda.max_memory_allocated(self.device)) / 2**20

    def close(self) -> None:
        self._graphs.clear()
        self.model = None
