"""``ftrt train readability``: the four-label readability classifier on real labels plus local synthetics.

Batches mix three streams: real labelled images (sampled with weight
1/sqrt(group size) so DRIMDB is not drowned by ODIR), synthetic regional and
global degradations of good training images, and non-fundus pictures. The
held-out split (``holdout_names``) is never sampled; it is scored once, at the
end, into the report that becomes the model card.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ftrt import __version__
from ftrt.metrics import binary_report, roc_auc
from ftrt.models import build_model, count_parameters
from ftrt.models.readability import LABELS
from ftrt.models.registry import preset_kwargs
from ftrt.training.checkpoint import save_weights
from ftrt.training.config import ReadabilityConfig
from ftrt.training.readability_data import (
    LABEL_RULES,
    SYNTHETIC_KINDS,
    LabelledImage,
    augment,
    disc_detector_hit_rate,
    holdout_names,
    label_counts,
    load_labelled,
    non_fundus_images,
    synthesise,
)
from ftrt.training.schedule import lr_at


def class_weights(streams: list[tuple[float, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Per-label weights that give positives and negatives half the loss each, as batches are drawn.

    ``streams`` is (share of the batch, label matrix, sampling probabilities)
    for each source of samples; weights are clipped to 0.2..5 so a label with a
    handful of negatives does not blow up.
    """
    pos = np.zeros(len(LABELS))
    neg = np.zeros(len(LABELS))
    for share, labels, p in streams:
        pos += share * (p[:, None] * (labels == 1)).sum(axis=0)
        neg += share * (p[:, None] * (labels == 0)).sum(axis=0)
    known = pos + neg
    w_pos = np.clip(known / (2 * np.maximum(pos, 1e-6)), 0.2, 5.0)
    w_neg = np.clip(known / (2 * np.maximum(neg, 1e-6)), 0.2, 5.0)
    return w_pos.astype(np.float32), w_neg.astype(np.float32)


def masked_bce(logits: torch.Tensor, target: torch.Tensor, w_pos: torch.Tensor, w_neg: torch.Tensor) -> torch.Tensor:
    """BCE over the labels a sample has (NaN = unknown), weighted per class."""
    known = ~torch.isnan(target)
    t = torch.nan_to_num(target, nan=0.0)
    w = torch.where(t > 0.5, w_pos, w_neg) * known
    loss = F.binary_cross_entropy_with_logits(logits, t, weight=w, reduction="sum")
    return loss / known.sum().clamp(min=1)


@torch.no_grad()
def predict(model: torch.nn.Module, images: np.ndarray, batch: int = 64) -> np.ndarray:
    model.eval()
    out = [model(torch.from_numpy(images[i:i + batch])).numpy() for i in range(0, len(images), batch)]
    return np.concatenate(out) if out else np.zeros((0, len(LABELS)), np.float32)


def fit_thresholds(items: list[LabelledImage], probs: np.ndarray) -> dict[str, float]:
    """Per-label decision thresholds that maximise balanced accuracy on the *training* images.

    The class weights shift the probabilities; a threshold fitted on training
    data (never the held-out split) puts each decision back where the classes
    separate. Ties take the middle of the best plateau.
    """
    labels = np.array([it.labels for it in items], np.float64)
    grid = np.round(np.arange(0.02, 0.981, 0.01), 2)
    out = {}
    for j, name in enumerate(LABELS):
        known = ~np.isnan(labels[:, j])
        if len(np.unique(labels[known, j])) < 2:
            out[name] = 0.5
            continue
        ba = np.array([binary_report(labels[known, j], probs[known, j], t)["balanced_accuracy"] for t in grid])
        best = np.flatnonzero(ba >= ba.max() - 1e-9)
        out[name] = float(grid[best[len(best) // 2]])
    return out


def evaluate_heldout(items: list[LabelledImage], probs: np.ndarray,
                     thresholds: dict[str, float] | None = None) -> dict[str, Any]:
    """Per-label report on every held-out image that has the label, plus the DRIMDB targets."""
    th = {name: 0.5 for name in LABELS} | (thresholds or {})
    labels = np.array([it.labels for it in items], np.float64)
    per_label = {}
    for j, name in enumerate(LABELS):
        known = ~np.isnan(labels[:, j])
        per_label[name] = {**binary_report(labels[known, j], probs[known, j], th[name]), "threshold": th[name]}
    groups = np.array([it.group for it in items])
    drimdb = np.char.startswith(groups.astype(str), "drimdb/")
    good = groups[drimdb] == "drimdb/Good"
    # "Readable" as the gate decides it: a fundus photograph whose retina is readable.
    readable = (probs[drimdb, 0] >= th["valid"]) & (probs[drimdb, 3] >= th["retina"])
    outlier = groups[drimdb] == "drimdb/Outlier"
    targets = {
        "drimdb_good_vs_not": {**binary_report(good, readable.astype(np.float64), 0.5),
                               "auc": roc_auc(good, probs[drimdb, 3])},
        "drimdb_outlier_vs_fundus_auc": roc_auc(~outlier, probs[drimdb, 0]),
    }
    return {"per_label": per_label, "targets": targets, "thresholds": th}


def regional_variants(good: list[LabelledImage], seed: int, tag: int) -> list[LabelledImage]:
    """Each good image plus one copy with a local defect over the disc and one over the macula (seeded)."""
    from ftrt.training.readability_data import NAN, degrade_region, find_disc, find_macula

    out = []
    for i, it in enumerate(good):
        rng = np.random.default_rng([seed, tag, i])
        side = it.image.shape[1]
        disc = find_disc(it.image)
        out.append(it)
        out.append(LabelledImage(f"{it.name}#disc", "synthetic disc", (1.0, 1.0, 0.0, NAN),
                                 degrade_region(it.image, disc, side * 0.10, rng)))
        out.append(LabelledImage(f"{it.name}#macula", "synthetic macula", (1.0, 0.0, 1.0, NAN),
                                 degrade_region(it.image, find_macula(it.image, disc), side * 0.12, rng)))
    return out


def evaluate_regional(model: torch.nn.Module, items: list[LabelledImage], thresholds: dict[str, float]) -> dict:
    """Regional heads on held-out good images with synthetic local defects (real held-out data has few
    macula/disc negatives: only the outliers)."""
    probs = predict(model, np.stack([it.image for it in items]))
    labels = np.array([it.labels for it in items], np.float64)
    out = {}
    for label in ("disc", "macula"):
        j = LABELS.index(label)
        known = ~np.isnan(labels[:, j])
        out[label] = {**binary_report(labels[known, j], probs[known, j], thresholds[label]),
                      "threshold": thresholds[label]}
    return out


class ReadabilityTrainer:
    def __init__(self, cfg: ReadabilityConfig, log: Callable[[str], None] = print) -> None:
        if not cfg.data_root or not Path(cfg.data_root).is_dir():
            raise ValueError(f"--data-root {cfg.data_root!r} is not a folder (expected the shared data folder)")
        self.cfg, self.log = cfg, log
        torch.manual_seed(cfg.seed)
        torch.set_num_threads(cfg.threads)
        self.rng = np.random.default_rng(cfg.seed)
        items = load_labelled(cfg.data_root, cfg.side, log=log)
        if not items:
            raise ValueError(f"{cfg.data_root}: no labelled images found (drimdb/, drive/, odir_eyedisease/, csdi/)")
        held = holdout_names([(it.name, it.group) for it in items])
        self.train = [it for it in items if it.name not in held]
        self.heldout = [it for it in items if it.name in held]
        self.good = [it for it in self.train if it.labels == (1.0, 1.0, 1.0, 1.0)]
        self.non_fundus = non_fundus_images(cfg.side, cfg.seed)
        sizes: dict[str, int] = {}
        for it in self.train:
            sizes[it.group] = sizes.get(it.group, 0) + 1
        p = np.array([1.0 / np.sqrt(sizes[it.group]) for it in self.train])
        self.p_train = p / p.sum()
        train_labels = np.array([it.labels for it in self.train], np.float64)
        f_nf = cfg.non_fundus_fraction if self.non_fundus else 0.0
        f_syn = cfg.synthetic_fraction if self.good else 0.0
        w_pos, w_neg = class_weights([
            (1.0 - f_nf - f_syn, train_labels, self.p_train),
            (f_syn, np.array(list(SYNTHETIC_KINDS.values())), np.full(len(SYNTHETIC_KINDS), 1 / len(SYNTHETIC_KINDS))),
            (f_nf, np.zeros((1, len(LABELS))), np.ones(1)),
        ])
        self.w_pos, self.w_neg = torch.from_numpy(w_pos), torch.from_numpy(w_neg)
        self.model = build_model(cfg.model)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.step, self.elapsed = 0, 0.0
        self.counts = {"train": label_counts(train_labels),
                       "heldout": label_counts(np.array([it.labels for it in self.heldout], np.float64))}

    def sample_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        cfg, rng = self.cfg, self.rng
        xs, ys = [], []
        for _ in range(cfg.batch_size):
            r = rng.random()
            if r < cfg.non_fundus_fraction and self.non_fundus:
                it = self.non_fundus[int(rng.integers(len(self.non_fundus)))]
                img, lab = it.image, it.labels
            elif r < cfg.non_fundus_fraction + cfg.synthetic_fraction and self.good:
                img, lab, _ = synthesise(self.good[int(rng.integers(len(self.good)))], rng)
            else:
                it = self.train[int(rng.choice(len(self.train), p=self.p_train))]
                img, lab = it.image, it.labels
            xs.append(augment(img, rng))
            ys.append(lab)
        return torch.from_numpy(np.stack(xs)), torch.tensor(np.array(ys, np.float32))

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        cfg = self.cfg
        for g in self.opt.param_groups:
            g["lr"] = lr_at(self.step, cfg.lr, cfg.min_lr, cfg.warmup, cfg.steps)
        self.model.train()
        loss = masked_bce(self.model.logits(x), y, self.w_pos, self.w_neg)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.step += 1
        return float(loss.item())

    def run(self, progress: bool = True) -> dict[str, Any]:
        cfg = self.cfg
        out = Path(cfg.out)
        out.mkdir(parents=True, exist_ok=True)
        self.log(f"{cfg.model}: {count_parameters(self.model):,} parameters; {len(self.train)} training, "
                 f"{len(self.heldout)} held-out images")
        log_file = (out / "log.jsonl").open("a")
        bar = tqdm(total=cfg.steps, initial=self.step, disable=not progress, desc=f"train {cfg.model}")
        while self.step < cfg.steps:
            t0 = time.perf_counter()
            x, y = self.sample_batch()
            loss = self.train_step(x, y)
            self.elapsed += time.perf_counter() - t0
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}")
            if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                log_file.write(json.dumps({"step": self.step, "elapsed_s": round(self.elapsed, 1), "loss": loss}) + "\n")
                log_file.flush()
        bar.close()
        log_file.close()
        return self.finish()

    def finish(self) -> dict[str, Any]:
        cfg = self.cfg
        out = Path(cfg.out)
        # Thresholds are fitted on the training images plus seeded regional defects of the good ones, so the
        # disc and macula decisions see negatives beyond the handful of real ones.
        fit_items = self.train + [v for v in regional_variants(self.good, cfg.seed, 17) if "#" in v.name]
        thresholds = fit_thresholds(fit_items, predict(self.model, np.stack([it.image for it in fit_items])))
        probs = predict(self.model, np.stack([it.image for it in self.heldout]))
        report = evaluate_heldout(self.heldout, probs, thresholds)
        meta = {
            "preset": cfg.model, "kwargs": preset_kwargs(cfg.model), "ftrt_version": __version__,
            "task": "readability", "labels": list(LABELS), "input_side": cfg.side, "thresholds": thresholds,
            "steps": self.step, "train_seconds": round(self.elapsed, 1),
            "parameters": count_parameters(self.model),
        }
        save_weights(out / "final.safetensors", self.model.state_dict(), meta)
        card = {
            **meta,
            "task": "fundus photograph readability: valid fundus, macula, optic disc, retina readable",
            "training": {**dataclasses.asdict(cfg), "train_images": len(self.train),
                         "non_fundus_images": len(self.non_fundus)},
            "label_rules": LABEL_RULES,
            "label_counts": self.counts,
            "heldout": {"images": sorted(it.name for it in self.heldout), **report},
            "heldout_synthetic_regional": evaluate_regional(self.model, regional_variants(
                [it for it in self.heldout if it.labels == (1.0, 1.0, 1.0, 1.0)], cfg.seed, 31), thresholds),
            "disc_detector_hit_rate_csdi": disc_detector_hit_rate(self.train + self.heldout),
        }
        (out / "card.json").write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
        return {"weights": str(out / "final.safetensors"), "heldout": report}
