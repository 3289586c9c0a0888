"""PyTorch eager backend (reference and baseline). torch is imported only when this backend opens."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ftrt.runtime.backends.base import Backend, BackendInfo, BackendUnavailable, TensorSpec


class TorchBackend(Backend):
    def __init__(self, weights: str | Path, device: str = "cpu", threads: int | None = None) -> None:
        self.weights = str(weights)
        self.device = device
        self.threads = threads
        self.model = None
        self.info = BackendInfo(name="torch", device=device, precision="fp32")

    def open(self) -> "TorchBackend":
        try:
            import torch
        except ImportError as exc:
            raise BackendUnavailable("the torch backend needs PyTorch: pip install 'ftrt[train]'") from exc
        from ftrt.models.pretrained import load_model

        if self.threads:
            torch.set_num_threads(self.threads)
        model, meta = load_model(self.weights)
        self.model = model.to(self.device).eval()
        self.info.metadata = {"pad_multiple": str(getattr(model, "pad_multiple", 1)), "min_side": "32",
                              "work_side": str(meta.get("work_side") or 0),
                              "preset": str(meta.get("preset")), "card_id": str(meta.get("card_id", ""))}
        if getattr(model, "task", "") == "readability":
            side = str(model.input_side)
            self.info.metadata.update(model="readability", labels=",".join(model.labels), input_side=side,
                                      min_side=side, thresholds=json.dumps(meta.get("thresholds", {})))
        return self

    @property
    def input_spec(self) -> TensorSpec:
        return TensorSpec("image", ("batch", 3, "height", "width"), "tensor(float)")

    def run(self, batch: np.ndarray) -> np.ndarray:
        import torch

        if self.model is None:
            self.open()
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
            return self.model(x).float().cpu().numpy()  # type: ignore[misc]

    def close(self) -> None:
        self.model = None
