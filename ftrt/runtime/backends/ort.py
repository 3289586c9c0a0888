"""ONNX Runtime backend: CPU by default; CUDA or TensorRT execution providers when present."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from ftrt.runtime.backends.base import Backend, BackendInfo, BackendUnavailable, TensorSpec
from ftrt.runtime.loaders import ModelLoader, as_loader

PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}


class OrtBackend(Backend):
    def __init__(self, model: "str | Path | ModelLoader", provider: str = "cpu", threads: int | None = None,
                 engine_cache: str | Path | None = None, device_id: int = 0) -> None:
        """``model``: a file (run as exported) or a loader that prepares it (ftrt.runtime.loaders; open_backend
        gives the CPU provider the CPU layout passes)."""
        if provider not in PROVIDERS:
            raise ValueError(f"unknown ONNX Runtime provider {provider!r}; choose {', '.join(PROVIDERS)}")
        self.loader = as_loader(model)
        self.model = Path(self.loader.path)
        self.provider = provider
        self.threads = threads
        self.engine_cache = engine_cache
        self.device_id = device_id
        self.session = None
        self.info = BackendInfo(name=f"ort-{provider}" if provider != "cpu" else "ort", device="cpu",
                                precision="fp32")
        if provider != "cpu":
            self.timing = "synchronous calls"  # IO binding, see _run_bound

    def _provider_list(self) -> list[object]:
        import onnxruntime as ort

        wanted = PROVIDERS[self.provider]
        available = ort.get_available_providers()
        if wanted not in available:
            hint = "pip install onnxruntime-gpu (it replaces onnxruntime)" if self.provider != "cpu" else ""
            raise BackendUnavailable(f"ONNX Runtime has no {wanted} here (available: {', '.join(available)}). {hint}".strip())
        if self.provider == "cuda":
            # Heuristic cuDNN search: exhaustive search costs hundreds of ms on every new image size.
            return [(wanted, {"device_id": self.device_id, "cudnn_conv_algo_search": "HEURISTIC"}),
                    "CPUExecutionProvider"]
        if self.provider == "tensorrt":
            opts: dict[str, object] = {"device_id": self.device_id, "trt_fp16_enable": False,
                                       **self._trt_profile_options()}
            if self.engine_cache:
                os.makedirs(self.engine_cache, exist_ok=True)
                opts.update(trt_engine_cache_enable=True, trt_engine_cache_path=str(self.engine_cache),
                            trt_timing_cache_enable=True)
            return [(wanted, opts), ("CUDAExecutionProvider", {"device_id": self.device_id}), "CPUExecutionProvider"]
        return [wanted]

    def _trt_profile_options(self) -> dict[str, str]:
        """The same generic profile ``ftrt build-engine`` uses (ORT's TensorRT provider honours one profile)."""
        import onnxruntime as ort

        from ftrt.engine.profiles import profiles_for_model

        meta = ort.InferenceSession(str(self.model), providers=["CPUExecutionProvider"]).get_modelmeta()
        lo, opt, hi = profiles_for_model(meta.custom_metadata_map)[-1].nchw()
        name = "image"
        fmt = lambda s: f"{name}:{'x'.join(map(str, s))}"  # noqa: E731
        return {"trt_profile_min_shapes": fmt(lo), "trt_profile_opt_shapes": fmt(opt),
                "trt_profile_max_shapes": fmt(hi)}

    def open(self) -> "OrtBackend":
        import onnxruntime as ort

        if not self.model.is_file():
            raise FileNotFoundError(f"{self.model}: no such ONNX file")
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.threads:
            so.intra_op_num_threads = self.threads
            so.inter_op_num_threads = 1
        so.log_severity_level = 3
        prepared = self.loader()
        self.info.graph = prepared.note
        try:
            session = ort.InferenceSession(prepared.source, so, providers=self._provider_list())
        except BackendUnavailable:
            raise
        except Exception as exc:  # ORT raises its own exception types for bad files
            raise ValueError(f"{self.model}: ONNX Runtime cannot load it ({str(exc).splitlines()[0]})") from exc
        self.session = session
        active = session.get_providers()
        # onnxruntime-gpu silently falls back to CPU when the GPU is missing: say so instead of pretending.
        if PROVIDERS[self.provider] not in active:
            raise BackendUnavailable(f"{PROVIDERS[self.provider]} did not start (active: {', '.join(active)}); "
                                     "is a GPU and its driver present?")
        meta = session.get_modelmeta().custom_metadata_map
        self.info.metadata = dict(meta)
        self.info.providers = active
        self.info.device = "cpu" if self.provider == "cpu" else f"cuda:{self.device_id}"
        self.info.precision = meta.get("precision", "fp32")
        return self

    @property
    def input_spec(self) -> TensorSpec:
        assert self.session is not None, "open() first"
        i = self.session.get_inputs()[0]
        return TensorSpec(i.name, tuple(i.shape), i.type)

    def run(self, batch: np.ndarray) -> np.ndarray:
        if self.session is None:
            self.open()
        assert self.session is not None
        name = self.session.get_inputs()[0].name
        x = np.ascontiguousarray(batch, dtype=np.float32)
        if self.provider == "cpu":
            return self.session.run(None, {name: x})[0]
        return self._run_bound(name, x)

    def run_inputs(self, inputs: list[np.ndarray]) -> np.ndarray:
        if self.session is None:
            self.open()
        assert self.session is not None
        names = [i.name for i in self.session.get_inputs()]
        if len(names) != len(inputs):
            raise ValueError(f"{self.model}: takes {len(names)} inputs ({', '.join(names)}), given {len(inputs)}")
        feed = {n: np.ascontiguousarray(a, dtype=np.float32) for n, a in zip(names, inputs)}
        return self.session.run(None, feed)[0]

    def _run_bound(self, name: str, x: np.ndarray) -> np.ndarray:
        """GPU providers: copy in, run and copy out as three synchronous steps through IO binding, so the
        host clock around each is its device time (ORT exposes no CUDA events)."""
        import onnxruntime as ort

        assert self.session is not None
        t0 = time.perf_counter()
        xv = ort.OrtValue.ortvalue_from_numpy(x, "cuda", self.device_id)
        t1 = time.perf_counter()
        io = self.session.io_binding()
        io.bind_ortvalue_input(name, xv)
        io.bind_output(self.session.get_outputs()[0].name, "cuda", self.device_id)
        self.session.run_with_iobinding(io)
        t2 = time.perf_counter()
        out = io.copy_outputs_to_cpu()[0]
        t3 = time.perf_counter()
        self.last_timing = {"h2d": (t1 - t0) * 1e3, "compute": (t2 - t1) * 1e3, "d2h": (t3 - t2) * 1e3}
        return out

    def close(self) -> None:
        self.session = None
