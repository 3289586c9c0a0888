#!/usr/bin/env python
"""Average weights files of one model: python tools/average_weights.py OUT.safetensors A[:SHARE] B[:SHARE] ...

Uniform unless shares are given (A.safetensors:0.75 B.safetensors:0.25). ftrt.training.checkpoint.average_weights;
a named shipped model such as res-s may stand for its file."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ftrt.models.pretrained import resolve_weights  # noqa: E402
from ftrt.training.checkpoint import average_weights  # noqa: E402


def _split(arg: str) -> tuple[str, float]:
    """FILE:SHARE -> (FILE, SHARE); a colon not followed by a number belongs to the path."""
    path, _, share = arg.rpartition(":")
    try:
        return (path, float(share)) if path else (arg, 1.0)
    except ValueError:
        return arg, 1.0


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    try:
        parts = [_split(a) for a in sys.argv[2:]]
        meta = average_weights([resolve_weights(p) for p, _ in parts], sys.argv[1], [w for _, w in parts])
    except (OSError, ValueError) as exc:
        sys.exit(f"error: {exc}")
    print(f"wrote {sys.argv[1]}: {meta['averaged_from']}")
