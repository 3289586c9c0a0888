"""``degrade(img, kind, rng)``: one entry point for every degradation kind."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Callable

import numpy as np

from ftrt.degrade.cataract import apply_cataract, sample_cataract
from ftrt.degrade.cofe import apply_cofe, sample_cofe
from ftrt.degrade.physical import apply_physical, sample_physical
from ftrt.degrade.kinds import KINDS
from ftrt.fov import fov_mask

# A learnt degradation (ftrt.degrade.syn.SynDegrader): (img, mask, rng) -> (degraded, params).
SynFn = Callable[[np.ndarray, np.ndarray, np.random.Generator], tuple[np.ndarray, dict[str, Any]]]


def degrade(
    img: np.ndarray,
    kind: str,
    rng: np.random.Generator,
    mask: np.ndarray | None = None,
    syn: SynFn | None = None,
    probability: Mapping[str, float] | None = None,
    ranges: Mapping[str, Sequence[float]] | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Degrade float RGB [0, 1]; returns (degraded float32 image, every sampled parameter).

    ``kind="syn"`` needs ``syn``, a trained Catintell-Syn generator (``SynDegrader``); ``probability``
    overrides how often each physical family of ``kind="real"`` is drawn (``physical.PROBABILITY``), ``ranges`` some of
    its parameters' ranges (``physical.check_ranges``).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown degradation kind {kind!r}; choose one of {', '.join(KINDS)}")
    if probability and kind != "real":
        raise ValueError(f"family probabilities apply to kind 'real', not {kind!r}")
    if ranges and kind != "real":
        raise ValueError(f"family ranges apply to kind 'real', not {kind!r}")
    if kind == "syn" and syn is None:
        raise ValueError("kind 'syn' needs a trained Catintell-Syn generator (--syn-model)")
    img = np.ascontiguousarray(img, dtype=np.float32)
    if mask is None:
        mask = fov_mask(img)
    shape = img.shape[:2]
    if kind == "mixed":
        u = float(rng.uniform())
        # Real low-quality photos mix causes: 40 % illumination/blur, 40 % haze, 20 % both.
        steps = ["cofe"] if u < 0.4 else ["cataract"] if u < 0.8 else ["cataract", "cofe"]
    else:
        steps = [kind]
    params: dict[str, Any] = {"kind": kind, "steps": steps, "height": shape[0], "width": shape[1]}
    out = img * mask[..., None]
    for step in steps:
        if step == "cofe":
            p = sample_cofe(rng, shape)
            out = apply_cofe(out, mask, p)
        elif step == "real":
            p = sample_physical(rng, shape, probability=probability, ranges=ranges)
            out = apply_physical(out, mask, p)
        elif step == "syn":
            assert syn is not None
            out, p = syn(out, mask, rng)
        else:
            p = sample_cataract(rng, shape)
            out = apply_cataract(out, mask, p)
        params[step] = p
    return out.astype(np.float32), params
