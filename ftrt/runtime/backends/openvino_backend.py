"""OpenVINO backend (no torch): the same ONNX file compiled by OpenVINO's CPU plugin.

Why it exists: on x86 CPUs OpenVINO's JIT kernels run the restorer's grouped 5x5
convolutions natively, 1.1-1.2x faster than ONNX Runtime even after ftrt lays them out
for ORT's blocked kernels (see benchmarks/results/cpu_latency.md). It is also the CPU
runtime for ftrt's INT8 Q/DQ files: OpenVINO compiles their quantized convolutions to
INT8 kernels (VNNI/AMX), where ONNX Runtime's CPU provider runs them slower than FP32
(benchmarks/results/precision.md). ``precision="bf16"`` lets the plugin compute in
bfloat16 on CPUs with AVX-512 BF16 or AMX (OpenVINO's own default there); ftrt asks for
f32 unless told otherwise, so results match the other backends. ONNX Runtime's OpenVINO
execution provider would be the other route; it rejected ftrt's graph ("the graph is not
acyclic", onnxruntime-openvino 1.24.1), the native runtime does not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ftrt.deps import MissingDependency, require
from ftrt.runtime.backends.base import Backend, BackendInfo, BackendMissing, BackendUnavailable, TensorSpec

PRECISIONS = {"fp32": "f32", "bf16": "bf16"}


def import_openvino(purpose: str) -> Any:
    """The ``openvino`` module, or BackendUnavailable saying what ``purpose`` needs and how to install it."""
    try:
        return require("openvino", purpose)
    except MissingDependency as exc:
        raise BackendMissing(str(exc)) from None


class OpenVinoBackend(Backend):
    def __init__(self, model: str | Path, threads: int | None = None, precision: str = "fp32") -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"unknown OpenVINO precision {precision!r}; choose {', '.join(PRECISIONS)}")
        self.model = Path(model)
        self.threads = threads
        self.precision = precision
        self.request: Any = None
        self._input: TensorSpec | None = None
        self.info = BackendInfo(name="openvino" if precision == "fp32" else f"openvino-{precision}", device="cpu",
                                precision=precision)

    def open(self) -> "OpenVinoBackend":
        ov = import_openvino("the openvino backend")
        if not self.model.is_file():
            raise FileNotFoundError(f"{self.model}: no such ONNX file")
        core = ov.Core()
        if self.precision == "bf16" and "BF16" not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
            raise BackendUnavailable("openvino-bf16: this CPU has no bfloat16 support (AVX-512 BF16 or AMX)")
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY",
                                  "INFERENCE_PRECISION_HINT": PRECISIONS[self.precision]}
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = self.threads
        try:
            model = core.read_model(str(self.model))
            compiled = core.compile_model(model, "CPU", config)
        except RuntimeError as exc:
            raise ValueError(f"{self.model}: OpenVINO cannot compile it ({str(exc).splitlines()[0]})") from None
        self.request = compiled.create_infer_request()
        port = compiled.inputs[0]
        self._input = TensorSpec(port.get_any_name(), tuple(str(d) for d in port.get_partial_shape()),
                                 "tensor(float)")
        # OpenVINO's ONNX reader keeps the file's metadata_props (ftrt's pad multiple, work side,
        # thresholds) as the model's "framework" run-time info.
        rt_info = model.get_rt_info()
        framework = rt_info["framework"] if "framework" in rt_info else {}
        self.info.metadata = {k: v if isinstance(v, str) else v.astype(str) for k, v in framework.items()}
        # A Q/DQ (int8) or mixed FP16 file keeps its own precision: OpenVINO runs Q/DQ convolutions as INT8
        # kernels whatever the hint, which only sets the precision of everything else.
        declared = self.info.metadata.get("precision", "fp32")
        if declared != "fp32":
            self.info.precision = declared
        self.info.providers = [f"OpenVINO {ov.__version__}", "CPU"]
        return self

    @property
    def input_spec(self) -> TensorSpec:
        assert self._input is not None, "open() first"
        return self._input

    def run(self, batch: np.ndarray) -> np.ndarray:
        if self.request is None:
            self.open()
        self.request.infer({0: np.ascontiguousarray(batch, dtype=np.float32)})
        return np.array(self.request.get_output_tensor(0).data, dtype=np.float32, copy=True)

    def run_inputs(self, inputs: list[np.ndarray]) -> np.ndarray:
        if self.request is None:
            self.open()
        self.request.infer({i: np.ascontiguousarray(a, dtype=np.float32) for i, a in enumerate(inputs)})
        return np.array(self.request.get_output_tensor(0).data, dtype=np.float32, copy=True)

    def close(self) -> None:
        self.request = None
