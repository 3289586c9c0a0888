"""What this host offers for TensorRT: the TensorRT module and version, the GPU, and a CUDA API.

Everything here imports lazily and fails with one actionable line, because
most machines that run ftrt (CI, clinic PCs without a GPU) have neither.
"""

from __future__ import annotations

from typing import Any

from ftrt.engine.errors import INSTALL_HINT, TensorRTUnavailable
from ftrt.engine.sidecar import HostInfo

__all__ = ["INSTALL_HINT", "TensorRTUnavailable", "host_info", "trt_module"]


def trt_module() -> Any:
    try:
        import tensorrt as trt
    except (ImportError, OSError) as exc:
        # The PyPI stub installs but fails to import without libnvinfer: say that, not a traceback.
        raise TensorRTUnavailable(f"TensorRT is not installed ({str(exc).splitlines()[0]}); {INSTALL_HINT}") from None
    if not hasattr(trt, "Builder"):
        # tensorrt-stubs alone leaves an importable namespace package of .pyi files.
        raise TensorRTUnavailable(f"TensorRT is not installed (only its type stubs are); {INSTALL_HINT}")
    return trt


def version_tuple(version: str) -> tuple[int, int]:
    major, minor = (int(v) for v in version.split(".")[:2])
    return major, minor


def gpu_info(device: int = 0) -> tuple[str | None, str | None, str | None]:
    """(name, compute capability "8.7", driver version) through cuda-python or pycuda; Nones if neither works."""
    try:
        from ftrt.engine.cuda import cudart

        rt = cudart()
        err, prop = rt.cudaGetDeviceProperties(device)
        if int(err) == 0:
            _, drv = rt.cudaDriverGetVersion()
            name = prop.name.decode() if isinstance(prop.name, bytes) else str(prop.name)
            return name.strip("\x00 "), f"{prop.major}.{prop.minor}", f"{drv // 1000}.{(drv % 1000) // 10}"
    except (ImportError, OSError, AttributeError):
        pass
    try:
        import pycuda.driver as pycuda_drv  # type: ignore[import-not-found]

        pycuda_drv.init()
        dev = pycuda_drv.Device(device)
        major, minor = dev.compute_capability()
        v = pycuda_drv.get_driver_version()
        return dev.name(), f"{major}.{minor}", f"{v // 1000}.{(v % 1000) // 10}"
    except Exception:  # noqa: BLE001 - pycuda raises its own types, or no GPU at all
        return None, None, None


def host_info(device: int = 0) -> HostInfo:
    try:
        version = str(trt_module().__version__)
    except TensorRTUnavailable:
        version = None
    name, cc, driver = gpu_info(device)
    return HostInfo(trt_version=version, gpu_name=name, compute_capability=cc, cuda_driver=driver)
