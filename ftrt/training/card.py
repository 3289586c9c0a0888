"""Promote a finished run to a shipped model: weights plus a model card (JSON and Markdown)."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ftrt.models.pretrained import WEIGHTS_DIR, read_metadata
from ftrt.training.checkpoint import load_weights, save_weights
from ftrt.training.config import RestorerConfig


# Options added after stage 9; their config defaults are what every run before them had.
_EARLIER_DEFAULTS: dict[str, Any] = {k: getattr(RestorerConfig(), k)
                                     for k in ("band_sigmas", "contrast_fine_sigma", "contrast_noise_gate",
                                               "deinterlace")}


def build_card(run_dir: Path, name: str, notes: dict[str, Any] | None = None) -> dict[str, Any]:
    meta = read_metadata(run_dir / "final.safetensors")
    if "colour_head" in meta:
        return _colour_head_card(meta, name, notes)
    state = json.loads((run_dir / "last" / "state.json").read_text())
    cfg = state["config"]
    return {
        "id": f"{name}@{meta.get('ftrt_version')}-{datetime.now(timezone.utc):%Y%m%d}",
        "name": name,
        "preset": meta["preset"],
        "kwargs": meta["kwargs"],
        "parameters": meta["parameters"],
        "task": "fundus photograph restoration (illumination, blur, artifacts, cataract haze)",
        "input": meta["input"],
        "work_side": cfg.get("work_side") or cfg["max_side"],
        "training": {
            "data": cfg["data"],
            "degradation": cfg["kind"],
            # Absent from the cards of runs made before the key existed: those drew the default probabilities.
            "family_probability": cfg.get("family_probability") or None,
            "family_ranges": cfg.get("family_ranges") or None,
            "input_bits": cfg.get("input_bits") or None,
            "steps": meta["steps"],
            "batch_size": cfg["batch_size"],
            "crop": cfg["crop"],
            "max_side": cfg["max_side"],
            "lr": cfg["lr"],
            "schedule": f"linear warm-up {cfg['warmup']} steps, cosine to {cfg['min_lr']}",
            "losses": {k: cfg[k] for k in ("w_pixel", "w_perceptual", "w_identity", "w_gan", "w_edge", "w_contrast",
                                           "w_contrast_match", "w_contrast_map", "w_band", "w_ridge", "w_vessel")
                       if k in cfg},
            "identity_fraction": cfg.get("identity_fraction"),
            # Recorded only where a run moved them from what every earlier run used.
            **{k: cfg[k] for k, was in _EARLIER_DEFAULTS.items() if k in cfg and cfg[k] != was},
            "scale_range": [cfg.get("scale_min", 1.0), cfg.get("scale_max", 1.0)],
            "init": cfg.get("init") or None,
            # The weights record whether bf16 ran (older weights do not record it: the config says what was asked).
            "speed": {"bf16": meta.get("bf16", cfg.get("bf16", False)),
                      "channels_last": cfg.get("channels_last", False),
                      "threads": cfg.get("threads")},
            "perceptual_network": (f"{cfg.get('perceptual_model')} (first {cfg.get('perceptual_depth')} stages)"
                                   if cfg.get("w_perceptual") else None),
            "vessel_network": cfg.get("vessel_model") if cfg.get("w_vessel") else None,
            "ridge_sigmas": cfg.get("ridge_sigmas") if cfg.get("w_ridge") else None,
            "ema_decay": cfg["ema_decay"],
            "seed": cfg["seed"],
            "train_seconds": meta["train_seconds"],
        },
        "validation_history": state.get("history", []),
        **(notes or {}),
    }


def _colour_head_card(meta: dict[str, Any], name: str, notes: dict[str, Any] | None) -> dict[str, Any]:
    """A `train colour-head` result: the card of the network it froze, plus the head's own fit."""
    fit = meta["colour_head"]
    init = Path(fit["init"])
    shipped = WEIGHTS_DIR / f"{fit['init']}.json"
    if (init / "last" / "state.json").exists():
        card = build_card(init, name)
    elif shipped.exists():
        card = json.loads(shipped.read_text())
    else:
        raise ValueError(f"the colour head's init {fit['init']!r} is neither a run folder nor a shipped model")
    return {**card, "id": f"{name}@{meta.get('ftrt_version')}-{datetime.now(timezone.utc):%Y%m%d}", "name": name,
            "kwargs": meta["kwargs"], "parameters": meta["parameters"], "colour_head": fit, **(notes or {})}


def classifier_card(run_dir: Path, name: str, notes: dict[str, Any] | None = None) -> dict[str, Any]:
    card = json.loads((run_dir / "card.json").read_text())
    return {"id": f"{name}@{card.get('ftrt_version')}-{datetime.now(timezone.utc):%Y%m%d}", "name": name, **card,
            **(notes or {})}


def ship(run_dir: str | Path, name: str, weights_dir: str | Path, notes: dict[str, Any] | None = None) -> Path:
    """Copy a finished run's weights into ``weights_dir`` as ``<name>.safetensors`` with its card beside it."""
    run = Path(run_dir)
    dest = Path(weights_dir)
    # Classifier and Syn runs write their own card (held-out report, label rules, losses); a restorer's is
    # built here.
    own_card = (run / "card.json").exists()
    card = classifier_card(run, name, notes) if own_card else build_card(run, name, notes)
    state, meta = load_weights(run / "final.safetensors")
    if not own_card:
        meta["work_side"] = card["work_side"]
    log = run / "log.jsonl"
    if not log.exists() and "colour_head" in card:
        log = Path(card["colour_head"]["init"]) / "log.jsonl"  # the frozen network's training log
    return _write_shipped(dest, name, state, meta, card, log)


def _write_shipped(dest: Path, name: str, state: dict[str, Any], meta: dict[str, Any], card: dict[str, Any],
                   log: Path) -> Path:
    """``<name>.safetensors`` (the weights, their metadata naming the card), ``<name>.json`` (the card) and, where
    the training log exists, ``<name>.train-log.jsonl``."""
    save_weights(dest / f"{name}.safetensors", state, {**meta, "card_id": card["id"], "name": name})
    (dest / f"{name}.json").write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
    if log.exists():
        shutil.copyfile(log, dest / f"{name}.train-log.jsonl")
    return dest / f"{name}.safetensors"


def ship_chain(chain: str | Path, denoiser_run: str | Path, name: str, weights_dir: str | Path,
               notes: dict[str, Any] | None = None, refiner_run: str | Path | None = None) -> Path:
    """Ship a ``dn-res-s`` or ``dn-res-rf-s`` file (``checkpoint.chain_denoiser``) as ``<name>.safetensors`` with its
    card: the restorer's shipped card as its ``restorer`` part (by its id), the denoiser run's training and
    validation as its ``denoiser`` part, the gate, and for a ``dn-res-rf-s`` the refiner run's (``refiner_run``) as
    its ``refiner`` part. The newest run's log (the refiner's, else the denoiser's) is copied as
    ``<name>.train-log.jsonl``."""
    from ftrt.models.registry import CHAIN_PRESETS

    state, meta = load_weights(chain)
    if meta.get("preset") not in CHAIN_PRESETS:
        raise ValueError(f"{chain}: not a {' or '.join(CHAIN_PRESETS)} file (preset {meta.get('preset')!r})")
    if ("refiner" in meta["parts"]) != (refiner_run is not None):
        raise ValueError(f"{chain}: a refiner run goes with a chain that holds a refiner, and only with one")
    run = Path(denoiser_run)
    run_state = json.loads((run / "last" / "state.json").read_text())
    cfg = run_state["config"]
    restorer_id = meta["parts"]["restorer"].get("card_id")
    card = {
        "id": f"{name}@{meta.get('ftrt_version')}-{datetime.now(timezone.utc):%Y%m%d}",
        "name": name,
        "preset": meta["preset"],
        "kwargs": meta["kwargs"],
        "parameters": meta["parameters"],
        "task": "fundus photograph restoration; sensor noise taken out first where the photograph shows it",
        "input": meta["input"],
        "work_side": meta["work_side"],
        "gate": {"noise_contrast_ratio": meta["kwargs"]["gate"],
                 "meaning": "the denoised photograph replaces the input from 0 (at or below the first ratio) to 1 "
                            "(from the second on); ftrt.models.denoise.noise_contrast_ratio"},
        "restorer": {"card_id": restorer_id, "card": f"{restorer_id.split('@')[0]}.json" if restorer_id else None},
        "denoiser": {
            "model": cfg.get("model"), "init": cfg.get("init") or None,
            "data": cfg["data"],
            "pairs": "real degradations drawn without sensor noise and JPEG (the target); the same crop with "
                     f"Poisson-Gaussian sensor noise ({cfg['noise_fraction']:.0%} of crops) rounded to 8 bits",
            "family_probability": cfg.get("family_probability") or None,
            "steps": meta["parts"]["denoiser"].get("steps"),
            "batch_size": cfg["batch_size"], "crop": cfg["crop"], "max_side": cfg["max_side"],
            "scale_range": [cfg["scale_min"], cfg["scale_max"]], "lr": cfg["lr"],
            "schedule": f"linear warm-up {cfg['warmup']} steps, cosine to {cfg['min_lr']}",
            "loss": _denoiser_loss(cfg), "ema_decay": cfg["ema_decay"], "seed": cfg["seed"],
            "train_seconds": round(run_state.get("elapsed_s", 0.0), 1),
            "validation_history": run_state.get("history", []),
        },
        **(notes or {}),
    }
    log = run / "log.jsonl"
    if refiner_run is not None:
        card["refiner"] = _refiner_part(Path(refiner_run), meta["parts"]["refiner"])
        log = Path(refiner_run) / "log.jsonl"
    return _write_shipped(Path(weights_dir), name, state, meta, card, log)


def _denoiser_loss(cfg: dict[str, Any]) -> str:
    """A denoiser run's loss, as its card states it."""
    loss = f"{cfg.get('w_pixel', 1.0)} x Charbonnier inside the FOV"
    if cfg.get("w_restored"):
        loss += (f", {cfg['w_restored']} x Charbonnier on pixels and Laplacians of what the frozen restorer "
                 f"{cfg['restorer']} makes of the denoised crop against what it makes of the noise-free crop")
    return loss


def _refiner_part(run: Path, part: dict[str, Any]) -> dict[str, Any]:
    """The refiner run's training and validation, for a chain's card."""
    run_state = json.loads((run / "last" / "state.json").read_text())
    cfg = run_state["config"]
    return {
        "model": cfg.get("model"), "init": cfg.get("init") or None, "data": cfg["data"],
        "pairs": f"outputs of {cfg['restorer']} (ONNX Runtime, the ftrt restore pipeline) on one real degradation "
                 f"of each photograph rounded to 8 bits ({cfg['identity_fraction']:.1%} undegraded), against the "
                 "clean photograph",
        "family_probability": cfg.get("family_probability") or None,
        "steps": part.get("steps"), "batch_size": cfg["batch_size"], "crop": cfg["crop"],
        "max_side": cfg["max_side"], "scale_range": [cfg["scale_min"], cfg["scale_max"]], "lr": cfg["lr"],
        "schedule": f"linear warm-up {cfg['warmup']} steps, cosine to {cfg['min_lr']}",
        "loss": f"Charbonnier on detail above a {cfg['split_sigma']} px blur against the clean photograph's, "
                f"{cfg['w_keep_low']} x Charbonnier of the blurred output against the restorer's, "
                f"{cfg['w_ridge']} x ridge (vessel-line) loss"
                + (f", {cfg['w_contrast_match']} x contrast match" if cfg.get("w_contrast_match") else "")
                + (f", {cfg['w_band']} x band" if cfg.get("w_band") else ""),
        "ema_decay": cfg["ema_decay"], "seed": cfg["seed"],
        "train_seconds": round(run_state.get("elapsed_s", 0.0), 1),
        "validation_history": run_state.get("history", []),
    }
