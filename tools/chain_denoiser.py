#!/usr/bin/env python
"""The denoiser in front of a restorer, as one weights file:
python tools/chain_denoiser.py OUT DENOISER RESTORER [LO HI] [--refiner RF]

A dn-s run's weights and a res-s's (a named shipped model such as res-s may stand for its file) become one dn-res-s
file that `ftrt export` turns into one graph; LO HI: the gate's noise-to-contrast ratios (default the preset's);
RF: an rf-m run's weights behind the restorer (the file is then a dn-res-rf-s).
ftrt.training.checkpoint.chain_denoiser."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ftrt.models.pretrained import resolve_weights  # noqa: E402
from ftrt.training.checkpoint import chain_denoiser  # noqa: E402

if __name__ == "__main__":
    args = sys.argv[1:]
    refiner = None
    if "--refiner" in args:
        k = args.index("--refiner")
        if k + 1 >= len(args):
            sys.exit(__doc__)
        refiner = args[k + 1]
        del args[k: k + 2]
    if len(args) not in (3, 5):
        sys.exit(__doc__)
    try:
        gate = (float(args[3]), float(args[4])) if len(args) == 5 else None
        meta = chain_denoiser(resolve_weights(args[1]), resolve_weights(args[2]), args[0], gate,
                              resolve_weights(refiner) if refiner else None)
    except (OSError, ValueError) as exc:
        sys.exit(f"error: {exc}")
    behind = f", then {refiner}" if refiner else ""
    print(f"wrote {args[0]}: {args[1]} then {args[2]}{behind}, gate {meta['kwargs']['gate']}")
