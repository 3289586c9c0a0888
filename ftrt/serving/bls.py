"""A raw network on the same Triton server as a restorer backend of ``fundus_restore`` (business logic
scripting, BLS): the pipeline (FOV, working size, tiles, gate, paste back) stays in the Python model, the
network runs where the server runs networks best (the onnxruntime or TensorRT backend on a GPU server).

Only usable inside Triton's Python stub: ``pb`` is its ``triton_python_backend_utils``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ftrt.runtime.backends.base import Backend, BackendInfo, TensorSpec


class BlsBackend(Backend):
    def __init__(self, pb: Any, model_name: str, input_name: str, output_name: str,
                 metadata: dict[str, str] | None = None) -> None:
        self.pb = pb
        self.model_name, self.input_name, self.output_name = model_name, input_name, output_name
        meta = {str(k): str(v) for k, v in (metadata or {}).items()}
        self.info = BackendInfo(name=f"triton-bls:{model_name}", device="triton",
                                precision=meta.get("precision", "fp32"), metadata=meta)

    def open(self) -> "BlsBackend":
        return self

    @property
    def input_spec(self) -> TensorSpec:
        return TensorSpec(self.input_name, ("batch", 3, "height", "width"), "tensor(float)")

    def run(self, batch: np.ndarray) -> np.ndarray:
        request = self.pb.InferenceRequest(
            model_name=self.model_name, requested_output_names=[self.output_name],
            inputs=[self.pb.Tensor(self.input_name, np.ascontiguousarray(batch, dtype=np.float32))])
        response = request.exec()
        if response.has_error():
            raise RuntimeError(f"{self.model_name}: {response.error().message()}")
        return np.asarray(self.pb.get_output_tensor_by_name(response, self.output_name).as_numpy())
