"""Physics-style degradations that turn good fundus photographs into training pairs (numpy + OpenCV)."""

from typing import Any

from ftrt.degrade.kinds import KINDS

__all__ = ["KINDS", "degrade"]


def __getattr__(name: str) -> Any:
    # Lazy: the kinds are read by the CLI's --help, which should not load OpenCV.
    if name == "degrade":
        from ftrt.degrade.api import degrade

        return degrade
    raise AttributeError(f"module 'ftrt.degrade' has no attribute {name!r}")
