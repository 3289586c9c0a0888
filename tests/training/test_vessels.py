"""The vessel segmenter (``vessel-s``) and the restorer's vessel-map term it judges."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ftrt.models import build_model
from ftrt.models.pretrained import load_model
from ftrt.models.vessels import VesselNet
from ftrt.training.card import ship
from ftrt.training.config import RestorerConfig, VesselConfig
from ftrt.training.losses import vessel_map_loss
from ftrt.training.restorer import RestorerTrainer
from ftrt.training.vessels import VesselCropDataset, VesselTrainer
from tests.training.test_mage import _pool_with_vessels


def test_any_size_and_blind_to_exposure() -> None:
    net = build_model("vessel-s").eval()
    x = torch.rand(2, 3, 45, 61)
    with torch.no_grad():
        logits = net.forward_all(x)
        shifted = net.forward_all(x + 0.2)
        prob = net(x)
    assert [tuple(t.shape[-2:]) for t in logits] == [(45, 61), (23, 31), (12, 16), (6, 8)]
    torch.testing.assert_close(logits[0], shifted[0], atol=1e-5, rtol=0)
    assert prob.shape == (2, 1, 45, 61) and 0.0 <= float(prob.min()) and float(prob.max()) <= 1.0


class _DarkLines(torch.nn.Module):
    """A stand-in judge with a known response: a vessel is where green is darker than its surround."""

    def forward_all(self, x: torch.Tensor) -> list[torch.Tensor]:
        g = x[:, 1:2]
        surround = F.avg_pool2d(g, 9, 1, 4, count_include_pad=False)
        return [40.0 * (surround - g) - 2.0]


def test_vessel_map_loss_charges_lost_and_drawn_vessels_not_exposure() -> None:
    clean = torch.full((1, 3, 64, 64), 0.5)
    clean[:, :, :, 30:33] = 0.35  # one vessel
    lost = torch.full_like(clean, 0.5)
    drawn = clean.clone()
    drawn[:, :, 10:13, :] = 0.35  # a vessel the clean crop does not have
    judge = _DarkLines()
    assert abs(vessel_map_loss(judge, clean, clean).item()) < 1e-5
    assert abs(vessel_map_loss(judge, clean + 0.1, clean).item()) < 1e-5
    assert vessel_map_loss(judge, lost, clean).item() > 0.02
    assert vessel_map_loss(judge, drawn, clean).item() > 0.02
    pred = lost.clone().requires_grad_(True)
    vessel_map_loss(judge, pred, clean).backward()
    assert pred.grad is not None and pred.grad[0, 1, 32, 31] > 0  # darken where the vessel was


def test_segmenter_trains_on_clean_annotated_crops_and_ships_its_hold_out(tmp_path: Path, retina: np.ndarray) -> None:
    img_dir, ves_dir = _pool_with_vessels(tmp_path, retina)
    cfg = VesselConfig(data=[str(img_dir)], vessel_masks=[str(ves_dir)], out=str(tmp_path / "run"), steps=3,
                       batch_size=2, crop=48, max_side=128, val_images=1, val_every=3, save_every=3, workers=0,
                       warmup=1, threads=1)
    trainer = VesselTrainer(cfg, log=lambda m: None)
    assert len(trainer.train_pool) == 1 and len(trainer.val_pool) == 1  # the unannotated photograph is left out
    img, ves = trainer.dataset[0]
    assert img.shape == (3, 48, 48) and ves.shape == (1, 48, 48) and float(ves.min()) >= 0.0
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    result = trainer.run(progress=False)
    assert any(not torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())
    assert "dice" in trainer.history[-1]
    net, meta = load_model(result["weights"])
    assert isinstance(net, VesselNet) and meta["validation_photographs"] == [trainer.val_pool[0].path.name]
    shipped = ship(tmp_path / "run", "vs", tmp_path / "weights")  # the run's own card travels with it
    card = json.loads((tmp_path / "weights" / "vs.json").read_text())
    assert card["id"].startswith("vs@") and card["validation"]["photographs"] == meta["validation_photographs"]
    assert card["training"]["steps"] == 3 and load_model(str(shipped))[1]["card_id"] == card["id"]
    with pytest.raises(ValueError, match="annotation"):
        VesselTrainer(VesselConfig(data=[str(img_dir)], vessel_masks=[str(tmp_path)], out=str(tmp_path / "x")),
                      log=lambda m: None)
    assert isinstance(VesselCropDataset(trainer.train_pool, 32, 0, (1.0, 1.0))[5][0], torch.Tensor)


def test_restorer_learns_against_a_frozen_judge(tmp_path: Path, retina: np.ndarray) -> None:
    img_dir, ves_dir = _pool_with_vessels(tmp_path, retina)
    judge = VesselTrainer(VesselConfig(data=[str(img_dir)], vessel_masks=[str(ves_dir)], out=str(tmp_path / "v"),
                                       steps=1, batch_size=2, crop=48, max_side=128, val_images=1, workers=0,
                                       warmup=1, threads=1), log=lambda m: None).run(progress=False)["weights"]
    base = dict(data=[str(img_dir)], steps=2, batch_size=2, crop=48, max_side=128, val_images=1, val_every=1000,
                save_every=1000, workers=0, warmup=1, threads=1, kind="real", val_kind="real")
    trainer = RestorerTrainer(RestorerConfig(out=str(tmp_path / "r"), w_vessel=1.0, vessel_model=judge, **base),
                              log=lambda m: None)
    frozen = {k: v.clone() for k, v in trainer.vessel_judge.state_dict().items()}  # type: ignore[union-attr]
    trainer.run(progress=False)
    assert '"vessel"' in (tmp_path / "r" / "log.jsonl").read_text().splitlines()[-1]
    assert all(torch.equal(frozen[k], v) for k, v in trainer.vessel_judge.state_dict().items())  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="vessel_model"):
        RestorerTrainer(RestorerConfig(out=str(tmp_path / "a"), w_vessel=1.0, **base), log=lambda m: None)
    restorer = str(tmp_path / "r" / "final.safetensors")
    with pytest.raises(ValueError, match="not a vessel segmenter"):
        RestorerTrainer(RestorerConfig(out=str(tmp_path / "b"), w_vessel=1.0, vessel_model=restorer, **base),
                        log=lambda m: None)


def test_train_vessels_cli(tmp_path: Path, retina: np.ndarray) -> None:
    from click.testing import CliRunner

    from ftrt.cli.main import main

    img_dir, ves_dir = _pool_with_vessels(tmp_path, retina)
    r = CliRunner().invoke(main, [
        "train", "vessels", "--data", str(img_dir), "--vessel-masks", str(ves_dir), "--out", str(tmp_path / "run"),
        "--steps", "2", "--batch-size", "2", "--crop", "32", "--set", "val_images=1", "--set", "workers=0",
        "--set", "max_side=96", "--no-progress"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "run" / "card.json").exists() and (tmp_path / "run" / "final.safetensors").exists()
    r2 = CliRunner().invoke(main, ["train", "vessels", "--data", str(img_dir), "--out", str(tmp_path / "x")])
    assert r2.exit_code == 2 and "no training data" in r2.output
