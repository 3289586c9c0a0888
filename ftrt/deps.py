"""Optional dependencies, imported when needed and never before, with one line that says what to install.

ftrt's runtime needs numpy, OpenCV, ONNX Runtime, onnx, click, tqdm and PyYAML. Everything else belongs to
one extra; a command that needs it calls :func:`require`, which imports the module or raises
:class:`MissingDependency` naming the purpose and the install line. The CLI prints that line and exits 1.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# Top-level module -> how to install it. torch first and pinned: an unpinned torch pulls a multi-GB CUDA build.
INSTALL = {
    "torch": "pip install torch==2.13.0 && pip install 'ftrt[train]'",
    "safetensors": "pip install torch==2.13.0 && pip install 'ftrt[train]'",
    "openvino": "pip install 'ftrt[openvino]'",
    "tensorrt": ("install TensorRT for this machine: `pip install 'ftrt[trt]'` on an x86-64 host with an NVIDIA "
                 "driver (pulls tensorrt-cu12 from NVIDIA's index), or on Jetson use the TensorRT that JetPack "
                 "ships (`sudo apt install python3-libnvinfer`)"),
    "matplotlib": "pip install 'ftrt[plot]'",
    "pydicom": "pip install 'ftrt[dicom]'",
    "modelopt": "pip install 'nvidia-modelopt[onnx]' (in its own environment: it pins older onnx/onnxruntime)",
    "skimage": "pip install 'ftrt[samples]'",
    "onnxconverter_common": "pip install 'ftrt[export]'",
    "onnxscript": "pip install 'ftrt[export]'",
    "onnxslim": "pip install 'ftrt[export]'",
    "tritonclient": "pip install 'ftrt[serving]'",
}


class MissingDependency(ImportError):
    """An optional dependency a command needs is not installed; the message is the one line to show."""


def install_hint(module: str) -> str:
    root = module.split(".")[0]
    return INSTALL.get(root, f"pip install {root}")


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` for ``purpose`` (e.g. "ftrt export"), or raise MissingDependency with the install line."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependency(missing_message(module, purpose, exc)) from None


def missing_message(module: str, purpose: str, exc: BaseException | None = None) -> str:
    why = f" ({str(exc).splitlines()[0]})" if exc is not None and str(exc) else ""
    return f"{purpose} needs {module.split('.')[0]}, which is not installed{why}: {install_hint(module)}"


def optional_root(exc: ModuleNotFoundError) -> str | None:
    """The optional top-level module an ImportError is about, or None when it is not an optional one."""
    root = (exc.name or "").split(".")[0]
    return root if root in INSTALL else None
