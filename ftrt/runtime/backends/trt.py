"""TensorRT backend (no torch): an ftrt engine plus its sidecar, run through cuda-python or pycuda.

open(): check the sidecar against this host (TensorRT version, GPU, file
hash) before deserialising, then one execution context and one stream.
run(): pick the profile that fits the batch, set the input shape, reuse pinned
host and device buffers for shapes seen before, copy in, enqueue, copy out.
With ``cuda_graph=True`` the enqueue for a shape is captured once and
replayed, which removes the launch overhead of a fixed camera size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ftrt.engine.host import TensorRTUnavailable, host_info, trt_module
from ftrt.engine.profiles import EngineProfile, select_profile
from ftrt.engine.sidecar import check_compatible, read_sidecar
from ftrt.runtime.backends.base import Backend, BackendInfo, BackendUnavailable, ShapeProfile, TensorSpec


class _Buffers:
    """Pinned host and device buffers for one (input shape, output shape)."""

    def __init__(self, cuda: Any, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> None:
        self.host_in = cuda.host_array(in_shape, np.float32)
        self.host_out = cuda.host_array(out_shape, np.float32)
        self.dev_in = cuda.device_alloc(self.host_in.nbytes)
        self.dev_out = cuda.device_alloc(self.host_out.nbytes)
        self.graph: Any = None
        # Events around copy-in, compute and copy-out: device-side stage times without extra syncs.
        self.events = [cuda.event() for _ in range(4)]


class _MultiBuffers:
    """Pinned host and device buffers for the inputs and the output of one multi-input shape."""

    def __init__(self, cuda: Any, in_shapes: list[tuple[int, ...]], out_shape: tuple[int, ...]) -> None:
        self.host_in = [cuda.host_array(s, np.float32) for s in in_shapes]
        self.dev_in = [cuda.device_alloc(h.nbytes) for h in self.host_in]
        self.host_out = cuda.host_array(out_shape, np.float32)
        self.dev_out = cuda.device_alloc(self.host_out.nbytes)


class TensorRTBackend(Backend):
    timing = "cuda events"

    def __init__(self, engine: str | Path, device_id: int = 0, cuda_graph: bool = False,
                 check_host: bool = True) -> None:
        self.engine_path = Path(engine)
        self.device_id = device_id
        self.cuda_graph = cuda_graph
        self.check_host = check_host
        self.info = BackendInfo(name="trt", device=f"cuda:{device_id}", precision="fp32")
        self.profiles: list[EngineProfile] = []
        self._profile: int | None = None
        self._buffers: dict[tuple[int, ...], _Buffers] = {}
        self._multi: dict[tuple[tuple[int, ...], ...], _MultiBuffers] = {}
        self.input_names: list[str] = []
        self.engine: Any = None
        self.context: Any = None
        self.cuda: Any = None

    def open(self) -> TensorRTBackend:
        if not self.engine_path.is_file():
            raise FileNotFoundError(f"{self.engine_path}: no such engine file")
        sidecar = read_sidecar(self.engine_path)
        try:
            trt_module()
        except TensorRTUnavailable as exc:
            raise BackendUnavailable(str(exc)) from None
        import tensorrt as trt  # typed through tensorrt-stubs

        if self.check_host:
            check_compatible(self.engine_path, sidecar, host_info(self.device_id))
        from ftrt.engine.cuda import open_cuda

        try:
            self.cuda = open_cuda(self.device_id)
        except TensorRTUnavailable as exc:
            raise BackendUnavailable(str(exc)) from None
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        if self.engine is None:
            raise BackendUnavailable(f"{self.engine_path}: TensorRT could not deserialise the engine")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if n not in inputs]
        if not inputs or len(outputs) != 1:
            raise BackendUnavailable(f"{self.engine_path}: expected inputs and one output, got {names}")
        # Several inputs: a diffusion denoiser (run_inputs); its first input's N x H x W picks the profile.
        self.input_names = inputs
        self.input_name, self.output_name = inputs[0], outputs[0]
        self.profiles = [EngineProfile.from_dict(p) for p in sidecar["profiles"]]
        self.info.metadata = dict(sidecar.get("onnx", {}).get("metadata", {}))
        self.info.precision = sidecar.get("precision", {}).get("onnx", "fp32")
        self.info.profiles = [ShapeProfile(*(tuple(s) for s in p.nchw())) for p in self.profiles]  # type: ignore[arg-type]
        self.info.providers = [f"TensorRT {trt.__version__}", self.cuda.name]
        return self

    @property
    def input_spec(self) -> TensorSpec:
        return TensorSpec(getattr(self, "input_name", "image"), ("batch", 3, "height", "width"), "tensor(float)")

    def _enqueue(self, buf: _Buffers) -> None:
        self.context.set_tensor_address(self.input_name, buf.dev_in)
        self.context.set_tensor_address(self.output_name, buf.dev_out)
        if not self.context.execute_async_v3(self.cuda.stream_handle):
            raise RuntimeError("TensorRT enqueue failed")

    def _use_profile(self, shape: tuple[int, ...]) -> None:
        """Switch to the profile that fits the (first) input's N x . x H x W, if it is not the current one."""
        n, h, w = shape[0], shape[2], shape[3]
        idx = select_profile(self.profiles, (n, h, w))
        if idx is None:
            raise ValueError(f"input {n}x{h}x{w} fits no engine profile ({', '.join(map(str, self.profiles))}); "
                             "the fundus pipeline tiles such images, or rebuild with a wider --profile")
        if idx != self._profile:
            self.context.set_optimization_profile_async(idx, self.cuda.stream_handle)
            self._profile = idx
            self._buffers.clear()  # graphs captured under another profile are invalid now

    def run(self, batch: np.ndarray) -> np.ndarray:
        if self.context is None:
            self.open()
        if len(self.input_names) > 1:
            raise ValueError(f"{self.engine_path}: takes {len(self.input_names)} inputs; use run_inputs")
        self._use_profile(batch.shape)
        key = tuple(batch.shape)
        buf = self._buffers.get(key)
        if buf is None:
            self.context.set_input_shape(self.input_name, key)
            out_shape = tuple(self.context.get_tensor_shape(self.output_name))
            buf = self._buffers[key] = _Buffers(self.cuda, key, out_shape)
        else:
            self.context.set_input_shape(self.input_name, key)
        np.copyto(buf.host_in, batch, casting="same_kind")
        if self.cuda_graph and self.cuda.supports_graphs and buf.graph is None:
            self.cuda.htod(buf.dev_in, buf.host_in)
            self._enqueue(buf)  # TensorRT wants one plain launch per shape before capture
            buf.graph = self.cuda.capture(lambda: self._enqueue(buf))
        ev = buf.events
        self.cuda.record(ev[0])
        self.cuda.htod(buf.dev_in, buf.host_in)
        self.cuda.record(ev[1])
        if buf.graph is not None:
            self.cuda.replay(buf.graph)
        else:
            self._enqueue(buf)
        self.cuda.record(ev[2])
        self.cuda.dtoh(buf.host_out, buf.dev_out)
        self.cuda.record(ev[3])
        self.cuda.synchronize()
        self.last_timing = {"h2d": self.cuda.elapsed_ms(ev[0], ev[1]), "compute": self.cuda.elapsed_ms(ev[1], ev[2]),
                            "d2h": self.cuda.elapsed_ms(ev[2], ev[3])}
        return buf.host_out.copy()

    def run_inputs(self, inputs: list[np.ndarray]) -> np.ndarray:
        """Several inputs, in the engine's input order; synchronous copies (a few small tensors per call)."""
        if self.context is None:
            self.open()
        if len(inputs) == 1:
            return self.run(inputs[0])
        if len(inputs) != len(self.input_names):
            raise ValueError(f"{self.engine_path}: takes {len(self.input_names)} inputs, given {len(inputs)}")
        self._use_profile(inputs[0].shape)
        key = tuple(tuple(a.shape) for a in inputs)
        bufs = self._multi.get(key)
        for name, a in zip(self.input_names, inputs):
            self.context.set_input_shape(name, tuple(a.shape))
        if bufs is None:
            out_shape = tuple(self.context.get_tensor_shape(self.output_name))
            bufs = self._multi[key] = _MultiBuffers(self.cuda, [tuple(a.shape) for a in inputs], out_shape)
        for host, dev, a in zip(bufs.host_in, bufs.dev_in, inputs):
            np.copyto(host, a, casting="same_kind")
            self.cuda.htod(dev, host)
        for name, dev in zip(self.input_names, bufs.dev_in):
            self.context.set_tensor_address(name, dev)
        self.context.set_tensor_address(self.output_name, bufs.dev_out)
        if not self.context.execute_async_v3(self.cuda.stream_handle):
            raise RuntimeError("TensorRT enqueue failed")
        self.cuda.dtoh(bufs.host_out, bufs.dev_out)
        self.cuda.synchronize()
        return bufs.host_out.copy()

    def gpu_memory_mb(self) -> float | None:
        return self.cuda.memory_used_mb() if self.cuda is not None else None

    def close(self) -> None:
        self._buffers.clear()
        self._multi.clear()
        self.context = None
        self.engine = None
        if self.cuda is not None:
            self.cuda.close()
            self.cuda = None
