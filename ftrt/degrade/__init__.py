"""Physics-style degradations that turn good fundus photographs into training pairs (numpy + OpenCV)."""

from ftrt.degrade.api import KINDS, degrade

__all__ = ["KINDS", "degrade"]
