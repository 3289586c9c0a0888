#!/usr/bin/env python
"""The denoiser in front of a restorer, as one weights file:
python tools/chain_denoiser.py OUT DENOISER RESTORER [LO HI]

A dn-s run's weights and a res-s's (a named shipped model such as res-s may stand for its file) become one dn-res-s
file that `ftrt export` turns into one graph; LO HI: the gate's noise-to-contrast ratios (default the preset's).
ftrt.training.checkpoint.chain_denoiser."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ftrt.models.pretrained import resolve_weights  # noqa: E402
from ftrt.training.checkpoint import chain_denoiser  # noqa: E402

if __name__ == "__main__":
    if len(sys.argv) not in (4, 6):
        sys.exit(__doc__)
    try:
        gate = (float(sys.argv[4]), float(sys.argv[5])) if len(sys.argv) == 6 else None
        meta = chain_denoiser(resolve_weights(sys.argv[2]), resolve_weights(sys.argv[3]), sys.argv[1], gate)
    except (OSError, ValueError) as exc:
        sys.exit(f"error: {exc}")
    print(f"wrote {sys.argv[1]}: {sys.argv[2]} then {sys.argv[3]}, gate {meta['kwargs']['gate']}")
