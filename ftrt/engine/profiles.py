"""TensorRT optimisation profiles for the image input: parsing, defaults, and choosing one per call.

A profile is (min, opt, max) over (batch, height, width); channels are always 3.
Written as ``HxW:HxW:HxW`` (batch 1) or ``NxHxW:NxHxW:NxHxW`` on the command line.
Pure Python: the TensorRT builder and backend both use it, and CI tests it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ftrt.shapes import parse_dims

Dims = tuple[int, int, int]  # (batch, height, width)

# Common fundus camera outputs after FOV cropping: square-ish, 1-3 k px; the generic profile covers them.
CAMERA_SIDES = (1024, 1536, 2048)
MIN_SIDE = 32


@dataclass(frozen=True)
class EngineProfile:
    min: Dims
    opt: Dims
    max: Dims

    def __post_init__(self) -> None:
        for lo, o, hi in zip(self.min, self.opt, self.max, strict=True):
            if not 1 <= lo <= o <= hi:
                raise ValueError(f"profile {self}: needs 1 <= min <= opt <= max in every dimension")

    def fits(self, dims: Dims) -> bool:
        return all(lo <= d <= hi for lo, d, hi in zip(self.min, dims, self.max, strict=True))

    def nchw(self) -> tuple[tuple[int, int, int, int], ...]:
        """(min, opt, max) as NCHW shapes, what ``IOptimizationProfile.set_shape`` takes."""
        return tuple((n, 3, h, w) for n, h, w in (self.min, self.opt, self.max))  # type: ignore[return-value]

    def __str__(self) -> str:
        return ":".join(_fmt(d) for d in (self.min, self.opt, self.max))

    def as_dict(self) -> dict[str, list[int]]:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}

    @classmethod
    def from_dict(cls, d: dict[str, list[int]]) -> EngineProfile:
        return cls(tuple(d["min"]), tuple(d["opt"]), tuple(d["max"]))  # type: ignore[arg-type]


def _fmt(d: Dims) -> str:
    return f"{d[1]}x{d[2]}" if d[0] == 1 else f"{d[0]}x{d[1]}x{d[2]}"


def _dims(text: str) -> Dims:
    nums = parse_dims(text, (2, 3))
    return (1, nums[0], nums[1]) if len(nums) == 2 else (nums[0], nums[1], nums[2])


def parse_profile(text: str) -> EngineProfile:
    """``512x512:1024x1024:1536x1536`` or ``1x512x512:4x1024x1024:4x1536x1536``."""
    parts = text.split(":")
    if len(parts) != 3:
        raise ValueError(f"profile {text!r}: expected MIN:OPT:MAX, e.g. 512x512:1024x1024:1536x1536")
    lo, opt, hi = (_dims(p) for p in parts)
    if min(lo[1:]) < MIN_SIDE:  # an image profile; latent profiles (scaled_profile) may go lower
        raise ValueError(f"profile {text!r}: sides below {MIN_SIDE} px are not supported")
    return EngineProfile(lo, opt, hi)


def default_profiles(work_side: int = 0, max_batch: int = 1) -> list[EngineProfile]:
    """One narrow profile at the model's working size (what ``ftrt restore`` runs by default), one generic.

    The narrow profile lets TensorRT tune for the size that runs all day; the
    generic one covers native-resolution runs and tiles up to the largest
    common camera side.
    """
    profiles = []
    if work_side:
        lo = max(MIN_SIDE, work_side // 2)
        profiles.append(EngineProfile((1, lo, lo), (1, work_side, work_side), (max_batch, work_side, work_side)))
    side = CAMERA_SIDES[-1]
    profiles.append(EngineProfile((1, 256, 256), (1, CAMERA_SIDES[0], CAMERA_SIDES[0]), (max_batch, side, side)))
    return profiles


def profiles_for_model(metadata: dict[str, str]) -> list[EngineProfile]:
    """Default profiles from an ftrt ONNX's metadata: a classifier runs at its fixed side (batch 1..8),
    a restorer gets :func:`default_profiles` for its working size."""
    if metadata.get("model") == "readability":
        side = int(metadata.get("input_side", 224))
        return [EngineProfile((1, side, side), (1, side, side), (8, side, side))]
    return default_profiles(int(metadata.get("work_side", 0) or 0))


def input_shape(dims: list[int] | tuple[int, ...], n: int, h: int, w: int) -> tuple[int, ...]:
    """One network input's shape where the profile's first input is n x . x h x w: a dynamic (-1) batch
    axis becomes n, the dynamic spatial axes of a rank-4 input h and w; static dims stay. For a restorer that
    is (n, 3, h, w); for a diffusion denoiser also the timestep (n,), the condition latent (n, 4, h, w) and
    the readability features (n, 384, 7, 7)."""
    out = []
    for axis, d in enumerate(dims):
        if d >= 0:
            out.append(int(d))
        elif axis == 0:
            out.append(n)
        elif len(dims) == 4 and axis in (2, 3):
            out.append(h if axis == 2 else w)
        else:
            raise ValueError(f"input dims {list(dims)}: no rule for dynamic axis {axis}")
    return tuple(out)


def scaled_profile(p: EngineProfile, factor: int) -> EngineProfile:
    """``p`` at 1/factor of its spatial size, rounded up (a latent: the encoder pads the image first)."""
    def f(d: Dims) -> Dims:
        return (d[0], -(-d[1] // factor), -(-d[2] // factor))

    return EngineProfile(f(p.min), f(p.opt), f(p.max))


def select_profile(profiles: list[EngineProfile], dims: Dims) -> int | None:
    """Index of the profile to run ``dims`` with: among those that fit, the one whose opt is closest.

    None when no profile fits (the caller tiles or resizes, and says so).
    """
    best, best_cost = None, None
    for i, p in enumerate(profiles):
        if not p.fits(dims):
            continue
        cost = abs(p.opt[1] * p.opt[2] - dims[1] * dims[2]) + 1e9 * abs(p.opt[0] - dims[0])
        if best_cost is None or cost < best_cost:
            best, best_cost = i, cost
    return best
