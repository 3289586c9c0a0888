"""Checkpoints without pickle: tensors in safetensors, everything else in JSON."""

from __future__ import annotations

import json
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
