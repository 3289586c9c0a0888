"""Physical degradation families of real low-quality fundus photographs (``--kind real``), own implementation.

Each family models one cause and acts in that cause's own direction, in the order light takes:

    illumination (uneven light, small-pupil vignetting)  -> the fundus is lit unevenly
    veil (cataract: forward scatter + warm airlight)     -> the lens adds light and blur
    optics (defocus disc, Gaussian blur, motion line)    -> the eye and camera blur (Gaussian: off by default)
    reflection (diffuse corneal/lens reflexes)           -> stray light is added
    exposure (sensor gain and gamma, clipped)            -> the photograph is too dark or too bright
    noise (Poisson-Gaussian) then JPEG                   -> the sensor and the file

Why this replaces the old ``mixed`` recipe for training: that one jittered brightness, contrast and
saturation in both directions and mostly *brightened*, so the clean targets were darker than their
inputs and a restorer learnt "darken and flatten". Here a veil only adds light and lowers contrast,
blur only removes detail, and only exposure moves brightness both ways (around the photograph's own
level, in log space, so "no change" is the centre). Lesions are content, not degradation: nothing
is added that looks like a haemorrhage or an exudate (no dark dust spots, no small bright dots);
reflections are broad and diffuse.

Sizes are fractions of the FOV, so a 512 px and a 2048 px photograph degrade alike. The ranges were
chosen against real low-quality photographs (CSDI cataract, DRIMDB Bad, ODIR cataract: colour,
spread, sharpness and local contrast of each set); ``benchmarks/degradation_fit.py`` writes the
realism distances to ``benchmarks/results/degradation_fit.md`` (closest on colour and, for CSDI, on
features). The second fit (scatter blur x3, noise and JPEG half as often; the table's "shipped" rows)
took the spatial-frequency distance to CSDI from 1.07 to 0.74 and to ODIR cataract from 0.49 to 0.28, at a
CSDI feature distance of 19.6 (was 18.9; ODIR 24.0 -> 20.0); one draw each, and another draw of the same families
moves them as much (docs/benchmarks.md, three draws). Rare noise also matters for training: a restorer that sees
noise in a third of its inputs learns to smooth, and smooths the faint texture of real cataract photographs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np

from ftrt.degrade.common import REFERENCE_SIDE, f, gaussian_blur, radial_distance, smoothstep

# Draw order. "blur" (a Gaussian point-spread: the aberrations and forward scatter of a poor eye, without the veil's
# airlight) came last and is off by default, so every earlier draw stays what it was; it acts with the optics.
FAMILIES = ("illumination", "vignette", "veil", "defocus", "motion", "reflection", "exposure", "noise", "jpeg", "blur")
_ORDER = ("illumination", "vignette", "veil", "defocus", "blur", "motion", "reflection", "exposure", "noise", "jpeg")
# Families that take no random draw while their probability is 0 (the default draw does not know them).
_OFF_BY_DEFAULT = frozenset({"blur"})

# Probability that each family is drawn for one photograph (several usually act together, as in real
# photographs); at least one of the first-order causes is always drawn.
PROBABILITY = {
    "illumination": 0.45, "vignette": 0.3, "veil": 0.5, "defocus": 0.35, "motion": 0.12,
    "reflection": 0.2, "exposure": 0.4, "noise": 0.18, "jpeg": 0.15, "blur": 0.0,
}
PRIMARY = ("illumination", "veil", "defocus", "motion", "exposure")


def _fov_geometry(mask: np.ndarray) -> tuple[float, float, float]:
    """(cy, cx, radius) of the FOV's bounding box; the whole frame when the mask is empty."""
    # On a quarter-resolution grid: exact to 4 px, and 16x fewer pixels to scan.
    ys, xs = np.nonzero(mask[::4, ::4])
    ys, xs = ys * 4, xs * 4
    if ys.size == 0:
        h, w = mask.shape
        return h / 2, w / 2, min(h, w) / 2
    # Python floats: a numpy float64 scalar would promote every float32 map computed from it.
    return (float(ys.min() + ys.max()) / 2, float(xs.min() + xs.max()) / 2,
            max(float(ys.max() - ys.min()), float(xs.max() - xs.min()), 2.0) / 2)


def check_probability(probability: Mapping[str, float]) -> dict[str, float]:
    """A training run's per-family overrides of ``PROBABILITY``, checked: known families, values in 0-1."""
    if not isinstance(probability, Mapping):
        raise ValueError(f"family probabilities must map a family to a probability, not {probability!r}")
    unknown = set(probability) - set(FAMILIES)
    if unknown:
        raise ValueError(f"unknown degradation families {sorted(unknown)}; choose from {', '.join(FAMILIES)}")
    bad = {k: v for k, v in probability.items() if not 0.0 <= float(v) <= 1.0}
    if bad:
        raise ValueError(f"family probabilities must lie in 0-1: {bad}")
    return {k: float(v) for k, v in probability.items()}


# Parameters measured in pixels at REFERENCE_SIDE: a range given for one of them scales with the photograph,
# as the samplers' own ranges do.
_SIZED = frozenset({"scatter_sigma", "glow_sigma", "radius", "length", "sigma"})


def check_ranges(ranges: Mapping[str, Sequence[float]]) -> dict[str, tuple[float, float]]:
    """A training run's redrawn parameter ranges, ``{"veil.t_var": [0.0, 0.45]}``, checked: a known family,
    one of its continuous parameters (not a seed, a grid size or a flag), low <= high, finite, and no negative
    size."""
    if not isinstance(ranges, Mapping):
        raise ValueError(f"family ranges must map 'family.parameter' to [low, high], not {ranges!r}")
    out: dict[str, tuple[float, float]] = {}
    probe = np.random.default_rng(0)
    for name, bounds in ranges.items():
        family, _, param = str(name).partition(".")
        if family not in FAMILIES:
            raise ValueError(f"family range {name!r}: unknown family {family!r}; choose from {', '.join(FAMILIES)}")
        sampled = _SAMPLERS[family](probe, 1.0)
        floats = sorted(k for k, v in sampled.items() if isinstance(v, float))
        if param not in floats:
            raise ValueError(f"family range {name!r}: {family} has no continuous parameter {param!r}; "
                             f"choose from {', '.join(floats)}")
        try:
            lo, hi = (float(b) for b in bounds)
        except (TypeError, ValueError):
            raise ValueError(f"family range {name!r} must be [low, high], not {bounds!r}") from None
        if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi) or (param in _SIZED and lo < 0):
            raise ValueError(f"family range {name!r} must satisfy {'0 <= ' if param in _SIZED else ''}low <= high, "
                             f"got [{lo}, {hi}]")
        out[f"{family}.{param}"] = (lo, hi)
    return out


def sample_physical(rng: np.random.Generator, shape: tuple[int, int], families: tuple[str, ...] = FAMILIES,
                    only: str | None = None, probability: Mapping[str, float] | None = None,
                    ranges: Mapping[str, Sequence[float]] | None = None) -> dict[str, Any]:
    """Every parameter of one degradation; ``families`` limits what may be drawn (held-out evaluation),
    ``only`` draws exactly that one family (the per-family tests and plots), ``probability`` overrides how
    often some families are drawn (a training run that dwells on what its restorer fails at), ``ranges``
    redraws some parameters from other ranges (``check_ranges``; a fit to real photographs tried as a run)."""
    unknown = set(families) - set(FAMILIES) | ({only} - set(FAMILIES) if only else set())
    if unknown:
        raise ValueError(f"unknown degradation families {sorted(unknown)}; choose from {', '.join(FAMILIES)}")
    odds = {**PROBABILITY, **check_probability(probability or {})}
    if only:
        chosen = [only]
    else:
        chosen = [k for k in FAMILIES if k in families and (odds[k] > 0 or k not in _OFF_BY_DEFAULT)
                  and rng.uniform() < odds[k]]
        primary = [k for k in PRIMARY if k in families]
        if primary and not any(k in chosen for k in primary):
            chosen.append(primary[int(rng.integers(len(primary)))])
        chosen = [k for k in _ORDER if k in chosen]
    scale = min(shape) / REFERENCE_SIDE
    # Only a run that asks for ranges pays for checking them (every default draw passes here).
    redraw = check_ranges(ranges) if ranges else {}
    p: dict[str, Any] = {"families": chosen}
    for k in chosen:
        p[k] = _SAMPLERS[k](rng, scale)
        # Drawn after the family's own parameters, so a run without ranges draws exactly what it always did.
        for name, (lo, hi) in redraw.items():
            family, _, param = name.partition(".")
            if family == k:
                p[k][param] = f(rng.uniform(lo, hi) * (scale if param in _SIZED else 1.0))
    return p


def _sample_illumination(rng: np.random.Generator, scale: float) -> dict[str, Any]:
    # A smooth log-gain field: a linear tilt plus a coarse random grid (bicubic), 0.1-0.45 in log units.
    return {"tilt": f(rng.uniform(0.1, 0.6)), "angle": f(rng.uniform(0, 2 * math.pi)),
            "field_std": f(rng.uniform(0.08, 0.3)), "grid": int(rng.integers(3, 6)),
            "seed": int(rng.integers(0, 2**31 - 1))}


def _sample_vignette(rng: np.random.Generator, scale: float) -> dict[str, Any]:
    # Small pupil: the periphery darkens from an inner radius outwards (relative to the FOV radius).
    return {"start": f(rng.uniform(0.3, 0.7)), "strength": f(rng.uniform(0.35, 0.85)),
            "dy": f(rng.uniform(-0.15, 0.15)), "dx": f(rng.uniform(-0.15, 0.15))}


def _sample_veil(rng: np.random.Generator, scale: float) -> dict[str, Any]:
    # Transmission t: what share of the fundus light gets through; the rest is airlight, warm because the
    # ageing lens absorbs blue, brighter than the fundus because it is scattered flash.
    return {"t": f(rng.uniform(0.5, 0.9)), "t_var": f(rng.uniform(0.0, 0.2)),
            "cy": f(rng.uniform(-0.4, 0.4)), "cx": f(rng.uniform(-0.4, 0.4)),
            "air_level": f(rng.uniform(0.9, 1.8)),  # airlight / FOV mean luminance
            "air_g": f(rng.uniform(0.75, 0.95)), "air_b": f(rng.uniform(0.4, 0.75)),
            "scatter_sigma": f(rng.uniform(0.9, 4.5) * scale), "glow_sigma": f(rng.uniform(8, 30) * scale)}


def _sample_defocus(rng: np.random.Generator, scale: float) -> dict[str, Any]:
    return {"radius": f(rng.uniform(1.0, 4.0) * scale)}


def _sample_blur(rng: np.random.Generator, scale: float) -> dict[str, Any]:
    # Wider than the veil's own scatter blur is likely to be on its own: the restorer lost vessels on Gaussian blurs
    # of 1.2-2.5 px (benchmarks/results/cataract_blur.md), which the default draw holds only under a veil.
    return {"sigma": f(rng.uniform(0.8, 3.0) * scale)}


def _sample_motion(rng: np.random.Generator, scale: float) -> dict[str, Any]:
    return {"length": f(rng.uniform(3.0, 11.0) * scale), "angle": f(rng.uniform(0, 180))}


def _sample_reflection(rng: np.random.Generator, scale: float) -> dict[str, Any]:
    # Broad, diffuse, bluish-white: a crescent at the rim (iris/cornea) or a central lens reflex.
    rim = bool(rng.uniform() < 0.6)
    return {"rim": rim, "angle": f(rng.uniform(0, 2 * math.pi)), "strength": f(rng.uniform(0.1, 0.35)),
            "size": f(rng.uniform(0.15, 0.35) if rim else rng.uniform(0.08, 0.2)),
            "offset": f(rng.uniform(0.0, 0.25)), "tint_b": f(rng.uniform(1.0, 1.25))}


def _sample_exposure(rng: np.random.Generator, scale: float) -> dict[str, Any]:
    # Log-uniform around the photograph's own exposure: as likely too dark as too bright.
    return {"gain": f(math.exp(rng.uniform(math.log(0.5), math.log(1.6)))), "gamma": f(rng.uniform(0.8, 1.25))}


def _sample_noise(rng: np.random.Generator, scale: float) -> dict[str, Any]:
    return {"read": f(rng.uniform(0.003, 0.02)), "shot": f(rng.uniform(0.0, 0.03)),
            "seed": int(rng.integers(0, 2**31 - 1))}


def _sample_jpeg(rng: np.random.Generator, scale: float) -> dict[str, Any]:
    return {"quality": int(rng.integers(30, 80))}


_SAMPLERS = {
    "illumination": _sample_illumination, "vignette": _sample_vignette, "veil": _sample_veil,
    "defocus": _sample_defocus, "blur": _sample_blur, "motion": _sample_motion, "reflection": _sample_reflection,
    "exposure": _sample_exposure, "noise": _sample_noise, "jpeg": _sample_jpeg,
}


def _fov_mean(img: np.ndarray, mask: np.ndarray) -> np.ndarray:
    sub, m = img[::2, ::2], mask[::2, ::2]
    px = sub[m] if m.any() else sub.reshape(-1, 3)
    return px.mean(axis=0)


def _illumination(img: np.ndarray, mask: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    h, w = img.shape[:2]
    cy, cx, r = _fov_geometry(mask)
    yy = (np.arange(h, dtype=np.float32)[:, None] - cy) / r
    xx = (np.arange(w, dtype=np.float32)[None, :] - cx) / r
    tilt = p["tilt"] * (np.cos(p["angle"]) * xx + np.sin(p["angle"]) * yy) / 2
    grid = np.random.default_rng(p["seed"]).normal(0.0, p["field_std"], (p["grid"], p["grid"])).astype(np.float32)
    field = cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
    # A multiplicative field never creates light where there was none, and keeps the field mean at 1.
    log_gain = tilt + field
    if mask.any():
        log_gain -= np.float32(log_gain[::4, ::4][mask[::4, ::4]].mean())
    return img * np.exp(log_gain)[..., None]


def _vignette(img: np.ndarray, mask: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    cy, cx, r = _fov_geometry(mask)
    d = radial_distance(img.shape[:2], cy + p["dy"] * r, cx + p["dx"] * r) / r
    fall = 1.0 - np.float32(p["strength"]) * smoothstep(p["start"], 1.15, d)
    return img * fall[..., None]


def _veil(img: np.ndarray, mask: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    h, w = img.shape[:2]
    cy, cx, r = _fov_geometry(mask)
    b = gaussian_blur(img, p["scatter_sigma"])
    # Wide-angle scatter: part of the fundus' own light is spread into a glow (lowers local contrast).
    # The glow is smooth: blurred at a quarter of the resolution, which is 16x cheaper and the same to
    # within interpolation.
    small = cv2.resize(b, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)
    glow = cv2.resize(gaussian_blur(small, p["glow_sigma"] / 4), (w, h), interpolation=cv2.INTER_LINEAR)
    b = 0.8 * b + 0.2 * glow
    d = radial_distance((h, w), cy + p["cy"] * r, cx + p["cx"] * r) / r
    t = np.clip(np.float32(p["t"]) - np.float32(p["t_var"]) * (np.clip(d, 0, 1.5) - np.float32(0.5)),
                0.15, 0.95).astype(np.float32)[..., None]
    lum = float(_fov_mean(img, mask) @ np.array([0.299, 0.587, 0.114], np.float32))
    air = np.array([1.0, p["air_g"], p["air_b"]], np.float32)
    air = air * (p["air_level"] * max(lum, 0.05) / float(air @ np.array([0.299, 0.587, 0.114], np.float32)))
    return t * b + (1.0 - t) * air


def _disc_kernel(radius: float) -> np.ndarray:
    n = 2 * int(math.ceil(radius)) + 1
    yy, xx = np.mgrid[:n, :n].astype(np.float32) - n // 2
    # Anti-aliased edge: a 1-px ramp so a radius of 1.3 differs from 1.0.
    k = np.clip(radius + 0.5 - np.hypot(yy, xx), 0.0, 1.0)
    return (k / k.sum()).astype(np.float32)


def _line_kernel(length: float, angle: float) -> np.ndarray:
    n = 2 * int(math.ceil(length / 2)) + 1
    k = np.zeros((n, n), np.float32)
    c = n // 2
    dx, dy = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    for t in np.linspace(-length / 2, length / 2, max(2, int(length * 4))):
        k[int(round(c + t * dy)), int(round(c + t * dx))] += 1.0
    return k / k.sum()


def _filter(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    return cv2.filter2D(img, -1, kernel, borderType=cv2.BORDER_REFLECT)


def _reflection(img: np.ndarray, mask: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    cy, cx, r = _fov_geometry(mask)
    if p["rim"]:
        # A crescent hugging the FOV edge on one side.
        ry, rx = cy + np.sin(p["angle"]) * r * 1.05, cx + np.cos(p["angle"]) * r * 1.05
    else:
        ry, rx = cy + np.sin(p["angle"]) * r * p["offset"], cx + np.cos(p["angle"]) * r * p["offset"]
    d = radial_distance(img.shape[:2], ry, rx) / (p["size"] * 2 * r)
    glow = np.float32(p["strength"]) * np.exp(np.float32(-0.5) * d * d)
    tint = np.array([0.9, 1.0, p["tint_b"]], np.float32)
    return img + glow[..., None] * tint * (1.0 - img)


def _exposure(img: np.ndarray, mask: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    return cv2.pow(np.clip(img * np.float32(p["gain"]), 0.0, 1.0), float(p["gamma"]))


def _noise(img: np.ndarray, mask: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    rng = np.random.default_rng(p["seed"])
    sigma = np.sqrt(np.float32(p["read"] ** 2) + np.float32(p["shot"] ** 2) * np.clip(img, 0, 1))
    return img + sigma * rng.standard_normal(img.shape, dtype=np.float32)


def _jpeg(img: np.ndarray, mask: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    u8 = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", u8[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(p["quality"])])
    decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else None
    if decoded is None:
        raise RuntimeError("OpenCV could not encode and decode a JPEG")
    return decoded[..., ::-1].astype(np.float32) / 255.0


def apply_physical(img: np.ndarray, mask: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    out = np.ascontiguousarray(img, dtype=np.float32)
    for k in p["families"]:
        q = p[k]
        if k == "defocus":
            out = _filter(out, _disc_kernel(q["radius"]))
        elif k == "motion":
            out = _filter(out, _line_kernel(q["length"], q["angle"]))
        elif k == "blur":
            out = gaussian_blur(out, q["sigma"])
        else:
            out = _APPLY[k](out, mask, q)
        out = np.clip(out, 0.0, 1.0).astype(np.float32)
        if k != "jpeg":
            # Light never lands outside the FOV (the camera's black surround stays black).
            out = out * mask[..., None]
    return out * mask[..., None]


_APPLY = {
    "illumination": _illumination, "vignette": _vignette, "veil": _veil, "reflection": _reflection,
    "exposure": _exposure, "noise": _noise, "jpeg": _jpeg,
}
