"""The one error every TensorRT / CUDA path raises when the host cannot do it."""

from __future__ import annotations

from ftrt.deps import install_hint

INSTALL_HINT = install_hint("tensorrt")


class TensorRTUnavailable(RuntimeError):
    """TensorRT (or a CUDA API, or a GPU) is not usable on this host."""
