"""The latent-diffusion sampler, in numpy: one implementation for training validation (PyTorch parts) and
every runtime (ONNX Runtime, OpenVINO, TensorRT parts), so what was validated is what runs.

Cosine noise schedule (Nichol & Dhariwal) over 1000 training steps, v-prediction, deterministic DDIM
(eta 0; Song et al.) on an evenly spaced subset of timesteps. ``strength`` < 1 starts from a noised latent
of another restorer's output at t = strength x 999 instead of pure noise (the refiner mode of LED): the
structure is already there, so a few steps suffice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

TRAIN_STEPS = 1000
MAX_STEPS = 200


class LatentParts(Protocol):
    latent_scale: float

    def features(self, x: np.ndarray) -> np.ndarray: ...
    def encode(self, x: np.ndarray) -> np.ndarray: ...
    def denoise(self, z: np.ndarray, t: np.ndarray, cond: np.ndarray, feats: np.ndarray) -> np.ndarray: ...
    def decode(self, z: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class SamplerSettings:
    steps: int = 8
    seed: int = 0
    strength: float = 1.0

    def __post_init__(self) -> None:
        if not 1 <= self.steps <= MAX_STEPS:
            raise ValueError(f"steps must be 1..{MAX_STEPS}, not {self.steps}")
        if not 0.0 < self.strength <= 1.0:
            raise ValueError(f"strength must be in (0, 1], not {self.strength}")


def alphas_cumprod(n: int = TRAIN_STEPS, s: float = 0.008) -> np.ndarray:
    """Cosine schedule: the share of signal left at each of ``n`` steps (float64, decreasing, < 1)."""
    t = np.arange(n + 1, dtype=np.float64) / n
    f = np.cos((t + s) / (1 + s) * np.pi / 2) ** 2
    a = f / f[0]
    betas = np.clip(1.0 - a[1:] / a[:-1], 0.0, 0.999)
    return np.cumprod(1.0 - betas)


def timesteps(steps: int, strength: float = 1.0, n: int = TRAIN_STEPS) -> list[int]:
    """The ``steps`` timesteps visited, from round(strength x (n - 1)) down, evenly spaced."""
    start = int(round(strength * (n - 1)))
    ts = np.linspace(start, 0, steps) if steps > 1 else np.array([start])
    out: list[int] = []
    for t in np.round(ts).astype(int):
        if not out or t < out[-1]:
            out.append(int(t))
    return out


def add_noise(z0: np.ndarray, noise: np.ndarray, t: int, ac: np.ndarray) -> np.ndarray:
    a = ac[t]
    return (np.sqrt(a) * z0 + np.sqrt(1.0 - a) * noise).astype(np.float32)


def ddim_step(z: np.ndarray, v: np.ndarray, t: int, t_next: int, ac: np.ndarray) -> np.ndarray:
    """One deterministic DDIM step from t to t_next (-1: the clean latent) given the predicted v."""
    a = ac[t]
    z0 = np.sqrt(a) * z - np.sqrt(1.0 - a) * v
    eps = np.sqrt(1.0 - a) * z + np.sqrt(a) * v
    if t_next < 0:
        return z0.astype(np.float32)
    a2 = ac[t_next]
    return (np.sqrt(a2) * z0 + np.sqrt(1.0 - a2) * eps).astype(np.float32)


def restore_latent(parts: LatentParts, x: Any, settings: SamplerSettings, init: np.ndarray | None = None,
                   timing: dict[str, float] | None = None) -> Any:
    """Restore an N x 3 x H x W batch in [0, 1]; ``init`` (same shape): start from it (strength < 1).

    A torch tensor in gives a torch tensor out (the PyTorch model's forward); numpy otherwise. ``timing``
    receives milliseconds per part: features, encode, denoise (all steps), decode, and steps.
    """
    is_torch = type(x).__module__.startswith("torch")
    xn = x.detach().cpu().numpy() if is_torch else np.asarray(x)
    xn = np.ascontiguousarray(xn, dtype=np.float32)
    n, _, h, w = xn.shape
    ac = alphas_cumprod()
    clock: dict[str, float] = {}

    def timed(name: str, fn: Any, *args: Any) -> np.ndarray:
        t0 = time.perf_counter()
        out = np.asarray(fn(*args), dtype=np.float32)
        clock[name] = clock.get(name, 0.0) + (time.perf_counter() - t0) * 1e3
        return out

    scale = float(parts.latent_scale)
    feats = timed("features", parts.features, xn)
    cond = timed("encode", parts.encode, xn) * scale
    rng = np.random.default_rng(settings.seed)
    noise = rng.standard_normal(cond.shape).astype(np.float32)
    ts = timesteps(settings.steps, settings.strength)
    if settings.strength < 1.0:
        start = timed("encode", parts.encode, np.ascontiguousarray(init if init is not None else xn,
                                                                   dtype=np.float32)) * scale
        z = add_noise(start, noise, ts[0], ac)
    else:
        z = noise
    for i, t in enumerate(ts):
        tt = np.full((n,), float(t), np.float32)
        v = timed("denoise", parts.denoise, z, tt, cond, feats)
        z = ddim_step(z, v, t, ts[i + 1] if i + 1 < len(ts) else -1, ac)
    out = timed("decode", parts.decode, np.ascontiguousarray(z / scale, dtype=np.float32))[:, :, :h, :w]
    if timing is not None:
        timing.update({k: round(v, 3) for k, v in clock.items()}, steps=float(len(ts)))
        timing["denoise_per_step"] = round(clock["denoise"] / len(ts), 3)
    if is_torch:
        import torch

        return torch.from_numpy(np.ascontiguousarray(out))
    return out
