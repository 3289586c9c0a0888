"""Catintell-Syn training, Syn pairs, and the mean teacher on real low-quality images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ftrt.io import write_image
from ftrt.training.config import RestorerConfig, SynConfig
from ftrt.training.losses import consistency_loss, perturb
from ftrt.training.restorer import RestorerTrainer
from ftrt.training.syn import SynTrainer


def _hazy(img: np.ndarray) -> np.ndarray:
    """A stand-in for a real cataract photograph: warm, low-contrast haze inside the FOV."""
    inside = img.max(axis=2, keepdims=True) > 0.03
    return np.where(inside, 0.45 * img + np.array([0.35, 0.22, 0.08], np.float32), 0).astype(np.float32)


@pytest.fixture()
def folders(tmp_path: Path, retina: np.ndarray) -> tuple[Path, Path]:
    good, cat = tmp_path / "good", tmp_path / "cataract"
    for k in range(3):
        write_image(good / f"g{k}.png", np.rot90(retina, k).copy())
        write_image(cat / f"c{k}.png", _hazy(np.rot90(retina, k + 1).copy()))
    return good, cat


def _syn_cfg(folders: tuple[Path, Path], out: Path, **kw: object) -> SynConfig:
    base = dict(good=[str(folders[0])], cataract=[str(folders[1])], out=str(out), steps=6, batch_size=2, crop=48,
                side=96, val_images=1, val_every=1000, save_every=1000, workers=0, warmup=1, threads=1, lr=2e-3,
                lr_d=2e-3, w_perceptual=0.0)
    base.update(kw)
    return SynConfig(**base)  # type: ignore[arg-type]


def test_syn_gan_steps_change_the_output_and_ship(folders: tuple[Path, Path], tmp_path: Path,
                                                  retina: np.ndarray) -> None:
    from ftrt.degrade import degrade
    from ftrt.degrade.syn import SynDegrader

    trainer = SynTrainer(_syn_cfg(folders, tmp_path / "syn"), log=lambda m: None)
    good, cat = next(iter(trainer.loader(1)))
    x = good[:1]
    with torch.no_grad():
        before = trainer.model(x).clone()
    rec = {}
    for _ in range(5):
        rec = trainer.train_step(good, cat)
    assert {"pixel", "identity", "gan", "disc"} <= set(rec) and all(np.isfinite(v) for v in rec.values())
    with torch.no_grad():
        assert (trainer.model(x) - before).abs().max() > 1e-3  # the adversarial steps moved the generator
    trainer.step = trainer.cfg.steps
    weights = trainer.finish()["weights"]
    syn = SynDegrader(weights)  # a finished run is usable as a degradation, resumable state aside
    out, params = degrade(retina, "syn", np.random.default_rng(0), syn=syn)
    assert out.shape == retina.shape and params["steps"] == ["syn"] and 0.6 <= params["syn"]["strength"] <= 1.2
    with pytest.raises(ValueError, match="needs a trained Catintell-Syn"):
        degrade(retina, "syn", np.random.default_rng(0))
    # Syn pairs mixed into classical ones feed the restorer.
    cfg = RestorerConfig(data=[str(folders[0])], out=str(tmp_path / "res"), steps=2, batch_size=4, crop=48,
                         max_side=96, val_images=1, workers=0, warmup=1, threads=1, syn_model=weights,
                         syn_fraction=0.5)
    res = RestorerTrainer(cfg, log=lambda m: None)
    assert np.isfinite(res.train_step(*next(iter(res.loader())))["pixel"])


def test_degrade_cli_syn_model_errors_are_one_line(tmp_path: Path, retina_png: Path) -> None:
    import subprocess
    import sys

    from ftrt.models.pretrained import WEIGHTS_DIR

    for bad in (str(tmp_path / "missing.safetensors"), str(WEIGHTS_DIR / "readability.safetensors")):
        r = subprocess.run([sys.executable, "-m", "ftrt.cli", "degrade", str(retina_png), "-o", str(tmp_path / "o"),
                            "--kind", "syn", "--syn-model", bad], capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and "--syn-model" in r.stderr and r.stderr.strip().count("\n") == 0


def test_identity_term_holds_a_cataract_image(folders: tuple[Path, Path], tmp_path: Path) -> None:
    """Trained on the identity term alone, G leaves a real cataract image as it is."""
    trainer = SynTrainer(_syn_cfg(folders, tmp_path / "syn", w_gan=0.0, w_pixel=0.0, w_identity=1.0),
                         log=lambda m: None)
    good, cat = next(iter(trainer.loader(1)))
    for _ in range(5):
        trainer.train_step(good, cat)
    with torch.no_grad():
        assert (trainer.model(cat) - cat).abs().mean() < 0.01


def test_unpaired_crops_line_up_fov_borders(folders: tuple[Path, Path], tmp_path: Path) -> None:
    trainer = SynTrainer(_syn_cfg(folders, tmp_path / "syn"), log=lambda m: None)
    for i in range(8):
        good, cat = trainer.dataset[i]
        g_in, c_in = good.amax(0) > 0.03, cat.amax(0) > 0.03
        assert (g_in == c_in).float().mean() > 0.9  # same place of two square FOV crops


def test_consistency_loss_zero_for_identical_inputs_and_views_differ() -> None:
    x = torch.rand(2, 3, 16, 16)
    assert consistency_loss(x, x.clone()).item() == 0.0
    gen = torch.Generator().manual_seed(0)
    a, b = perturb(x, gen), perturb(x, gen)
    assert not torch.equal(a, b) and a.min() >= 0 and a.max() <= 1
    black = torch.zeros(1, 3, 8, 8)
    assert torch.equal(perturb(black, gen), black)  # outside the FOV stays black


def test_mean_teacher_follows_the_student_by_ema(folders: tuple[Path, Path], tmp_path: Path) -> None:
    cfg = RestorerConfig(data=[str(folders[0])], real_lq=[str(folders[1])], out=str(tmp_path / "mt"), steps=4,
                         batch_size=2, crop=48, max_side=96, val_images=1, val_every=1000, save_every=1000,
                         workers=0, warmup=1, threads=1, lr=1e-3, ema_decay=0.5, consistency_rampup=2)
    trainer = RestorerTrainer(cfg, log=lambda m: None)
    batch = next(iter(trainer.loader()))
    assert len(batch) == 3  # (degraded, clean, real low-quality)
    teacher = [p.clone() for p in trainer.ema.parameters()]
    rec = trainer.train_step(*batch)
    assert "consistency" in rec and np.isfinite(rec["consistency"])
    # teacher = d * teacher + (1 - d) * student, with d = min(0.5, (1 + 0) / (10 + 0)) at step 0
    d = min(0.5, 1 / 10)
    for t0, t1, s in zip(teacher, trainer.ema.parameters(), trainer.model.parameters()):
        assert torch.allclose(t1, d * t0 + (1 - d) * s, atol=1e-6)
    assert trainer.consistency_weight() < cfg.w_consistency  # still ramping up at step 1
    trainer.step = cfg.consistency_rampup
    assert trainer.consistency_weight() == pytest.approx(cfg.w_consistency)
