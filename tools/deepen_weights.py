#!/usr/bin/env python
"""A restorer written in a deeper bottleneck's layout: python tools/deepen_weights.py OUT BASE DONOR

BASE's network with the bottleneck blocks only DONOR has (a run that deepened it, `bottleneck_blocks`), passing their
input through, so that tools/average_weights.py can average the two. ftrt.training.checkpoint.deepen_weights; a
named shipped model such as res-s may stand for its file."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ftrt.models.pretrained import resolve_weights  # noqa: E402
from ftrt.training.checkpoint import deepen_weights  # noqa: E402

if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    try:
        meta = deepen_weights(resolve_weights(sys.argv[2]), resolve_weights(sys.argv[3]), sys.argv[1])
    except (OSError, ValueError) as exc:
        sys.exit(f"error: {exc}")
    print(f"wrote {sys.argv[1]}: {sys.argv[2]} with {meta['kwargs'].get('bottleneck_blocks')} bottleneck blocks")
