"""Checkpoints without pickle: tensors in safetensors, everything else in JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ftrt.io import atomic_write


def save_weights(path: str | Path, state: dict[str, torch.Tensor], metadata: dict[str, Any] | None = None) -> None:
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    meta = {"ftrt": json.dumps(metadata or {}, sort_keys=True)}
    atomic_write(Path(path), lambda tmp: save_file(tensors, tmp, metadata=meta))


def load_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and ftrt metadata; the header is checked first (ftrt.io.weights), so a damaged checkpoint
    fails with its name."""
    from ftrt.io.weights import ftrt_metadata, read_safetensors_header

    path = Path(path)
    meta = ftrt_metadata(read_safetensors_header(path)[1], path)
    return load_file(str(path)), meta


def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for pid, st in sd["state"].items():
        for key, val in st.items():
            tensors[f"{pid}.{key}"] = val if torch.is_tensor(val) else torch.tensor(val)
    return tensors, {"param_groups": sd["param_groups"]}


def save_training_state(
    directory: str | Path,
    model: torch.nn.Module,
    ema: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
    extra_modules: dict[str, torch.nn.Module] | None = None,
    ema_metadata: dict[str, Any] | None = None,
) -> Path:
    """Write ``model/ema/optim.safetensors`` and ``state.json``; state.json last, so it marks completeness.

    ``ema_metadata``: the EMA file's model description, so a run in progress can be exported, restored with
    or evaluated like finished weights (``ftrt export --model RUN``)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    save_weights(d / "model.safetensors", model.state_dict())
    save_weights(d / "ema.safetensors", ema.state_dict(), ema_metadata)
    for name, mod in (extra_modules or {}).items():
        save_weights(d / f"{name}.safetensors", mod.state_dict())
    opt_tensors, opt_meta = _optimizer_tensors(optimizer)
    opt_tensors["rng.torch"] = torch.get_rng_state()
    save_weights(d / "optim.safetensors", opt_tensors)
    payload = {**state, "optimizer": opt_meta}
    atomic_write(d / "state.json", lambda tmp: Path(tmp).write_text(json.dumps(payload, indent=2, sort_keys=True)))
    return d


def load_training_state(
    directory: str | Path,
    model: torch.nn.Module,
    ema: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    extra_modules: dict[str, torch.nn.Module] | None = None,
) -> dict[str, Any]:
    d = Path(directory)
    if not (d / "state.json").exists():
        raise FileNotFoundError(f"{d}: no state.json, not a complete checkpoint")
    payload = json.loads((d / "state.json").read_text())
    model.load_state_dict(load_weights(d / "model.safetensors")[0])
    ema.load_state_dict(load_weights(d / "ema.safetensors")[0])
    for name, mod in (extra_modules or {}).items():
        mod.load_state_dict(load_weights(d / f"{name}.safetensors")[0])
    tensors = load_weights(d / "optim.safetensors")[0]
    torch.set_rng_state(tensors.pop("rng.torch"))
    state: dict[int, dict[str, Any]] = {}
    for key, val in tensors.items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = val
    optimizer.load_state_dict({"state": state, "param_groups": payload.pop("optimizer")["param_groups"]})
    return payload


def average_weights(paths: list[str | Path], out: str | Path, shares: list[float] | None = None) -> dict[str, Any]:
    """The average of several weights files of one model, uniform or by ``shares`` (a "model soup": a network
    fine-tuned from another sits in the same basin, so averaging the two lands between their behaviours, a
    trade-off found without training). Refuses files of different presets, kwargs or tensors. The metadata is
    the last file's, with ``averaged_from`` (each file's name, step and share) and no ``validation`` (no one
    measured the average)."""
    if len(paths) < 2:
        raise ValueError("averaging needs at least two weights files")
    shares = [1.0] * len(paths) if shares is None else list(shares)
    if len(shares) != len(paths) or not all(math.isfinite(w) and w >= 0 for w in shares) or sum(shares) <= 0:
        raise ValueError(f"shares must be one non-negative number per file, not all zero; got {shares}")
    shares = [w / sum(shares) for w in shares]
    loaded = [load_weights(p) for p in paths]
    state0, meta0 = loaded[0]
    for p, (state, meta) in zip(paths[1:], loaded[1:]):
        for key in ("preset", "kwargs"):
            if meta.get(key) != meta0.get(key):
                raise ValueError(f"{p}: {key} {meta.get(key)!r} differs from {paths[0]}'s {meta0.get(key)!r}")
        if state.keys() != state0.keys() or any(state[k].shape != state0[k].shape for k in state0):
            raise ValueError(f"{p}: its tensors differ from {paths[0]}'s")
    avg = {k: sum(w * s[k].double() for w, (s, _) in zip(shares, loaded)).to(state0[k].dtype)
           if state0[k].is_floating_point() else state0[k] for k in state0}
    meta = {k: v for k, v in loaded[-1][1].items() if k != "validation"}
    meta["averaged_from"] = [{"file": Path(p).name, "steps": m.get("steps"), "share": round(w, 6)}
                             for p, (_, m), w in zip(paths, loaded, shares)]
    save_weights(out, avg, meta)
    return meta


def deepen_weights(base: str | Path, donor: str | Path, out: str | Path) -> dict[str, Any]:
    """``base``'s network written in ``donor``'s deeper bottleneck (DenseUNet ``bottleneck_blocks``), so the two can
    be averaged: every tensor of ``base``, and the blocks only ``donor`` has with its weights but a layer scale of
    1e-5, which passes their input through (as a run that deepened ``base`` started). Refuses anything else that
    differs. The metadata is ``base``'s with ``donor``'s kwargs and ``deepened_with`` (``donor``'s name)."""
    (state, meta), (extra, dmeta) = load_weights(base), load_weights(donor)
    kwargs, dkwargs = meta.get("kwargs", {}), dmeta.get("kwargs", {})
    same = {k: v for k, v in kwargs.items() if k != "bottleneck_blocks"} == \
        {k: v for k, v in dkwargs.items() if k != "bottleneck_blocks"}
    added = set(extra) - set(state)
    if meta.get("preset") != dmeta.get("preset") or not same or set(state) - set(extra) \
            or any(not k.startswith("bottleneck.blocks.") for k in added) \
            or any(state[k].shape != extra[k].shape for k in state):
        raise ValueError(f"{donor}: not {base}'s network with a deeper bottleneck")
    deep = dict(state)
    for k in added:
        deep[k] = torch.full_like(extra[k], 1e-5) if k.endswith(".scale") else extra[k]
    meta = {**meta, "kwargs": dkwargs, "deepened_with": Path(donor).name}
    save_weights(out, deep, meta)
    return meta


def chain_denoiser(denoiser: str | Path, restorer: str | Path, out: str | Path,
                   gate: tuple[float, float] | None = None, refiner: str | Path | None = None) -> dict[str, Any]:
    """One ``dn-res-s`` weights file (``ftrt.models.denoise.DenoiseThenRestore``) from a trained ``dn-s`` or ``dn-m``
    and a trained res-s: their tensors under ``denoiser.`` and ``restorer.``, the restorer's metadata (work side, card,
    lineage) with the chain's preset and kwargs, and what each part came from. ``gate``: [lo, hi] of the
    noise-to-contrast ratio (default: the preset's). ``refiner``: a trained ``rf-m`` (``ftrt train refiner``)
    behind the restorer, under ``refiner.``; the file is then a ``dn-res-rf-s``. Refuses any other preset."""
    from ftrt.models.registry import DENOISER_PRESETS, preset_kwargs

    (dstate, dmeta), (rstate, rmeta) = load_weights(denoiser), load_weights(restorer)
    if dmeta.get("preset") not in DENOISER_PRESETS or rmeta.get("preset") != "res-s":
        raise ValueError(f"need a {' or '.join(DENOISER_PRESETS)} and a res-s weights file, got {dmeta.get('preset')!r} ({denoiser}) and "
                         f"{rmeta.get('preset')!r} ({restorer})")
    parts: dict[str, Any] = {"denoiser": {"file": Path(denoiser).name, "steps": dmeta.get("steps")},
                             "restorer": {"file": Path(restorer).name, "card_id": rmeta.get("card_id")}}
    state = {**{f"denoiser.{k}": v for k, v in dstate.items()}, **{f"restorer.{k}": v for k, v in rstate.items()}}
    preset = "dn-res-s"
    extra: dict[str, Any] = {}
    if refiner is not None:
        fstate, fmeta = load_weights(refiner)
        if fmeta.get("preset") != "rf-m":
            raise ValueError(f"refiner {refiner}: need an rf-m weights file, got {fmeta.get('preset')!r}")
        preset, extra = "dn-res-rf-s", {"refiner": fmeta.get("kwargs", {})}
        state.update({f"refiner.{k}": v for k, v in fstate.items()})
        parts["refiner"] = {"file": Path(refiner).name, "steps": fmeta.get("steps")}
    kwargs = preset_kwargs(preset, denoiser=dmeta.get("kwargs", {}), restorer=rmeta.get("kwargs", {}), **extra)
    if gate is not None:
        kwargs["gate"] = [float(gate[0]), float(gate[1])]
    meta = {**rmeta, "preset": preset, "kwargs": kwargs, "parameters": sum(v.numel() for v in state.values()),
            "parts": parts}
    save_weights(out, state, meta)
    return meta
