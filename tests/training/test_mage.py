"""MAGE-Net: the architecture's contract, vessel supervision that follows the crop, and a training smoke run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ftrt.io import write_image
from ftrt.models import build_model
from ftrt.models.mage import MAGENet
from ftrt.training.config import RestorerConfig
from ftrt.training.data import PairedDegradationDataset, attach_vessels
from ftrt.training.mage import MageTrainer, vessel_loss
from ftrt.training.restorer import restorer_trainer


def test_any_size_identity_at_init_and_four_segmentation_scales() -> None:
    torch.manual_seed(0)
    m = build_model("mage-s").eval()
    x = torch.rand(2, 3, 70, 53)
    with torch.no_grad():
        out = m.forward_all(x)
        y = m(x)
    assert out.stage1.shape == out.stage2.shape == y.shape == x.shape
    # Zero output convolutions: the untrained network changes nothing (fine-tuning starts from "no harm").
    assert torch.equal(y, x) and torch.equal(out.stage1, x)
    # Logits over the padded input (80 x 64), finest first.
    assert [tuple(v.shape[-2:]) for v in out.vessel_logits] == [(80, 64), (40, 32), (20, 16), (10, 8)]


def test_stage_two_treats_the_two_halves_independently() -> None:
    """The paper's half-height patches: a change in the bottom half never reaches stage 2's top half except
    through stage 1 and the segmenter, which see the whole photograph. With those frozen at their output
    on the unchanged photograph, stage 2's top half must be unchanged (channel attention pools per half)."""
    torch.manual_seed(0)
    m = MAGENet(width=8, step=8, stage2_width=8, rsp_width=4).eval()
    for p in m.out2.parameters():
        torch.nn.init.normal_(p, std=0.1)
    x = torch.rand(1, 3, 64, 48)
    x2 = x.clone()
    x2[:, :, 40:] = torch.rand(1, 3, 24, 48)
    with torch.no_grad():
        feats = m.stage1(x)
        feats[0], y1 = m.sam(feats[0], x)
        structure, _ = m.rsp(y1)
        m.stage1 = _Const(m.stage1(x))  # type: ignore[assignment]
        m.rsp = _Const(m.rsp(y1))  # type: ignore[assignment]
        a, b = m(x), m(x2)
    # The output convolution runs on the reassembled photograph: only the seam row sees across.
    assert torch.equal(a[:, :, :31], b[:, :, :31])
    assert not torch.equal(a[:, :, 32:], b[:, :, 32:])


class _Const(torch.nn.Module):
    def __init__(self, value: object) -> None:
        super().__init__()
        self.value = value

    def forward(self, *args: object) -> object:
        v = self.value
        return [t.clone() for t in v] if isinstance(v, list) else v


def test_vessel_loss_ignores_unlabelled_crops() -> None:
    logits = [torch.zeros(2, 1, 32 // 2**i, 32 // 2**i, requires_grad=True) for i in range(4)]
    ves = torch.zeros(2, 1, 32, 32)
    ves[0, :, 10:14] = 1.0
    ves[1] = -1.0  # no annotation
    loss = vessel_loss(logits, ves)
    assert loss.item() == pytest.approx(np.log(2.0), rel=1e-5)  # zero logits: BCE log 2 on labelled pixels
    loss.backward()
    assert logits[0].grad is not None and torch.count_nonzero(logits[0].grad[1]) == 0
    none = vessel_loss(logits, torch.full((2, 1, 32, 32), -1.0))
    assert none.item() == 0.0


def _pool_with_vessels(tmp_path: Path, retina: np.ndarray) -> tuple[Path, Path]:
    img_dir, ves_dir = tmp_path / "images", tmp_path / "1st_manual"
    img_dir.mkdir()
    ves_dir.mkdir()
    for k in range(3):
        write_image(img_dir / f"{k + 21}_training.png", np.rot90(retina, k).copy())
    # An annotation for two of the three: a vertical band at a known place, at twice the image's size (an
    # annotation drawn on the original photograph, the pool being downscaled).
    h, w = retina.shape[:2]
    for k in range(2):
        ves = np.zeros((2 * h, 2 * w), np.float32) if k % 2 == 0 else np.zeros((2 * w, 2 * h), np.float32)
        ves[:, ves.shape[1] // 2 - 8: ves.shape[1] // 2 + 8] = 1.0
        write_image(ves_dir / f"{k + 21}_manual1.png", np.repeat(ves[..., None], 3, axis=2))
    return img_dir, ves_dir


def test_vessel_maps_attach_by_name_and_follow_the_crop(tmp_path: Path, retina: np.ndarray) -> None:
    img_dir, ves_dir = _pool_with_vessels(tmp_path, retina)
    from ftrt.training.data import load_pool

    pool, errors = load_pool([str(img_dir)], 128)
    assert not errors
    assert attach_vessels(pool, [str(ves_dir)]) == 2
    assert [it.vessels is not None for it in pool] == [True, True, False]
    assert pool[0].vessels is not None and pool[0].vessels.shape == pool[0].image.shape[:2]
    ds = PairedDegradationDataset(pool, "real", 48, seed=1, vessels=True, vessel_fraction=0.5)
    labelled = 0
    for i in range(24):
        lq, gt, ves = ds[i]
        assert ves.shape == (1, 48, 48)
        if ves.min() < 0:
            assert torch.all(ves == -1)
            continue
        labelled += 1
        # The band stays a band through rotations and flips: wherever it is, it is one straight stripe.
        band = ves[0] > 0.5
        assert band.any(dim=0).all() or band.any(dim=1).all() or not band.any()
    assert labelled >= 12  # about 1/2 + 1/2 * 2/3 of the samples are annotated


def test_mismatched_annotation_is_refused(tmp_path: Path, retina: np.ndarray) -> None:
    img_dir, ves_dir = _pool_with_vessels(tmp_path, retina)
    write_image(ves_dir / "23_manual1.png", np.zeros((10, 40, 3), np.float32))
    from ftrt.training.data import load_pool

    pool, _ = load_pool([str(img_dir)], 128)
    with pytest.raises(ValueError, match="23_manual1.png"):
        attach_vessels(pool, [str(ves_dir)])


def test_mage_trains_all_parts_and_resumes(tmp_path: Path, retina: np.ndarray) -> None:
    img_dir, ves_dir = _pool_with_vessels(tmp_path, retina)
    cfg = RestorerConfig(model="mage-s", data=[str(img_dir)], vessel_masks=[str(ves_dir)], real_lq=[str(img_dir)],
                         out=str(tmp_path / "run"), steps=3, batch_size=2, crop=48, max_side=128, val_images=1,
                         val_every=3, save_every=3, workers=0, warmup=1, threads=1, lr=1e-3, kind="real",
                         val_kind="real", w_edge=1.0, consistency_rampup=1, w_band=1.0, w_contrast_match=0.5)
    trainer = restorer_trainer(cfg, log=lambda m: None)
    assert isinstance(trainer, MageTrainer)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.run(progress=False)
    rec = [line for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()][-1]
    for term in ("pixel", "edge", "identity", "seg", "consistency", "band", "contrast_match"):
        assert f'"{term}"' in rec
    after = trainer.model.state_dict()
    for part in ("stage1.", "sam.", "rsp.", "fabs.", "out2."):
        assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(part)), part
    assert (tmp_path / "run" / "snapshots" / "ema-000003.safetensors").exists()
    assert (tmp_path / "run" / "final.safetensors").exists()
