"""The few CUDA runtime calls the TensorRT backend needs, over cuda-python (preferred) or pycuda.

cuda-python has wheels for x86-64 and Jetson and supports CUDA-graph capture;
pycuda is used where it is what the host already has. Both give the backend
the same small surface: device and pinned host buffers, one stream, async
copies, synchronise, and (cuda-python only) graph capture.
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np


def cudart() -> Any:
    """cuda-python's runtime module (new layout ``cuda.bindings.runtime``, old ``cuda.cudart``)."""
    try:
        from cuda.bindings import runtime  # type: ignore[import-not-found]
    except ImportError:
        from cuda import cudart as runtime  # type: ignore[import-not-found,no-redef]
    return runtime


class CudaError(RuntimeError):
    pass


def _check(result: Any) -> Any:
    """cuda-python returns (err, *values): raise on error, return the values."""
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise CudaError(f"CUDA error {int(err)} ({getattr(err, 'name', err)})")
    return rest[0] if len(rest) == 1 else tuple(rest)


class CudaPython:
    name = "cuda-python"
    supports_graphs = True

    def __init__(self, device: int = 0) -> None:
        self.rt = cudart()
        _check(self.rt.cudaSetDevice(device))
        self.stream = _check(self.rt.cudaStreamCreate())
        self._host: list[int] = []
        self._dev: list[int] = []
        self._events: list[Any] = []

    @property
    def stream_handle(self) -> int:
        return int(self.stream)

    def device_alloc(self, nbytes: int) -> int:
        ptr = int(_check(self.rt.cudaMalloc(nbytes)))
        self._dev.append(ptr)
        return ptr

    def host_array(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """A pinned (page-locked) host array: async copies need it."""
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        ptr = int(_check(self.rt.cudaMallocHost(nbytes)))
        self._host.append(ptr)
        buf = (ctypes.c_byte * nbytes).from_address(ptr)
        return np.frombuffer(memoryview(buf), dtype=dtype).reshape(shape)

    def htod(self, dst: int, src: np.ndarray) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        _check(self.rt.cudaMemcpyAsync(dst, src.ctypes.data, src.nbytes, kind, self.stream))

    def dtoh(self, dst: np.ndarray, src: int) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        _check(self.rt.cudaMemcpyAsync(dst.ctypes.data, src, dst.nbytes, kind, self.stream))

    def synchronize(self) -> None:
        _check(self.rt.cudaStreamSynchronize(self.stream))

    def capture(self, launch: Any) -> Any:
        """Record what ``launch()`` enqueues on the stream as a CUDA graph; returns the executable graph."""
        mode = self.rt.cudaStreamCaptureMode.cudaStreamCaptureModeGlobal
        _check(self.rt.cudaStreamBeginCapture(self.stream, mode))
        launch()
        graph = _check(self.rt.cudaStreamEndCapture(self.stream))
        return _check(self.rt.cudaGraphInstantiate(graph, 0))

    def replay(self, graph_exec: Any) -> None:
        _check(self.rt.cudaGraphLaunch(graph_exec, self.stream))

    def event(self) -> Any:
        ev = _check(self.rt.cudaEventCreate())
        self._events.append(ev)
        return ev

    def record(self, event: Any) -> None:
        _check(self.rt.cudaEventRecord(event, self.stream))

    def elapsed_ms(self, start: Any, end: Any) -> float:
        """GPU time between two recorded events (waits for ``end``)."""
        _check(self.rt.cudaEventSynchronize(end))
        return float(_check(self.rt.cudaEventElapsedTime(start, end)))

    def memory_used_mb(self) -> float:
        """Device memory in use on this GPU (all processes: the driver's view, cudaMemGetInfo)."""
        free, total = _check(self.rt.cudaMemGetInfo())
        return (int(total) - int(free)) / 2**20

    def close(self) -> None:
        for ev in self._events:
            self.rt.cudaEventDestroy(ev)
        self._events = []
        for ptr in self._dev:
            self.rt.cudaFree(ptr)
        for ptr in self._host:
            self.rt.cudaFreeHost(ptr)
        self._dev, self._host = [], []
        self.rt.cudaStreamDestroy(self.stream)


class PyCuda:
    name = "pycuda"
    supports_graphs = False

    def __init__(self, device: int = 0) -> None:
        import pycuda.driver as drv  # type: ignore[import-not-found]

        drv.init()
        self.drv = drv
        self.ctx = drv.Device(device).retain_primary_context()
        self.ctx.push()
        self.stream = drv.Stream()
        self._keep: list[Any] = []

    @property
    def stream_handle(self) -> int:
        return int(self.stream.handle)

    def device_alloc(self, nbytes: int) -> int:
        mem = self.drv.mem_alloc(nbytes)
        self._keep.append(mem)
        return int(mem)

    def host_array(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        return self.drv.pagelocked_empty(shape, dtype)

    def htod(self, dst: int, src: np.ndarray) -> None:
        self.drv.memcpy_htod_async(dst, src, self.stream)

    def dtoh(self, dst: np.ndarray, src: int) -> None:
        self.drv.memcpy_dtoh_async(dst, src, self.stream)

    def synchronize(self) -> None:
        self.stream.synchronize()

    def capture(self, launch: Any) -> Any:
        raise CudaError("CUDA-graph capture needs cuda-python (pip install cuda-python)")

    def replay(self, graph_exec: Any) -> None:
        raise CudaError("CUDA-graph replay needs cuda-python")

    def event(self) -> Any:
        return self.drv.Event()

    def record(self, event: Any) -> None:
        event.record(self.stream)

    def elapsed_ms(self, start: Any, end: Any) -> float:
        end.synchronize()
        return float(start.time_till(end))

    def memory_used_mb(self) -> float:
        free, total = self.drv.mem_get_info()
        return (int(total) - int(free)) / 2**20

    def close(self) -> None:
        self._keep = []
        self.ctx.pop()


def open_cuda(device: int = 0) -> CudaPython | PyCuda:
    """cuda-python when importable, else pycuda; raises TensorRTUnavailable with the install line."""
    from ftrt.engine.errors import TensorRTUnavailable

    errors = []
    for impl in (CudaPython, PyCuda):
        try:
            return impl(device)
        except ImportError as exc:
            errors.append(f"{impl.name}: not installed ({exc.name})")
        except (CudaError, OSError) as exc:
            errors.append(f"{impl.name}: {exc}")
        except Exception as exc:  # noqa: BLE001 - pycuda's LogicError/RuntimeError when no GPU
            errors.append(f"{impl.name}: {str(exc).splitlines()[0]}")
    raise TensorRTUnavailable("no usable CUDA runtime (" + "; ".join(errors) + "): `pip install cuda-python` "
                              "and check the NVIDIA driver (`nvidia-smi`)")
