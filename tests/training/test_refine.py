"""The detail refiner (rf-m): pairs from the deployed restorer, its detail-only loss, a short run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ftrt.models.denoise import blur
from ftrt.training.refine import load_pair, refine_loss, restored_pairs


def test_pairs_are_the_deployed_restorers_outputs_written_once(tiny_data: Path, tmp_path: Path,
                                                                random_onnx: Path) -> None:
    """A pair holds what `ftrt restore`'s pipeline makes of the 8-bit degraded photograph; a second call writes
    nothing, and a folder another restorer or another draw wrote is refused."""
    from ftrt.degrade import degrade
    from ftrt.runtime import open_pipeline
    from ftrt.training.data import load_pool, quantise, rescale

    pool, _ = load_pool([str(tiny_data)], 128)
    logs: list[str] = []
    paths = restored_pairs(pool, str(random_onnx), tmp_path / "pairs", 0, (1.0, 1.0), {"veil": 1.0}, 0.0, 1,
                           logs.append)
    assert len(paths) == 3 and all(p.exists() for p in paths) and logs
    restored, clean, mask = load_pair(paths[0])
    assert restored.dtype == np.float16 and clean.dtype == np.uint8 and mask.shape == clean.shape[:2]
    assert np.array_equal(clean, (pool[0].float() * pool[0].mask[..., None] * 255 + 0.5).astype(np.uint8))
    assert not np.allclose(restored, clean / 255.0, atol=0.02)  # degraded and restored, not the clean photograph
    # Redrawn from the photograph's name: the same degradation, through the pipeline as `ftrt restore` runs it.
    rng = np.random.default_rng([0, 31, *pool[0].path.name.encode()])
    img, m = rescale(pool[0], rng, (1.0, 1.0))
    img = quantise(img * m[..., None], 8)
    rng.uniform()  # the identity draw
    lq, _ = degrade(img, "real", rng, mask=m, probability={"veil": 1.0})
    want = open_pipeline(str(random_onnx), "ort", threads=1).pipeline.restore(quantise(lq, 8) * m[..., None]).image
    assert np.abs(restored.astype(np.float32) - want * m[..., None]).max() < 2e-3  # float16's step near 1
    before = [p.stat().st_mtime_ns for p in paths]
    assert restored_pairs(pool, str(random_onnx), tmp_path / "pairs", 0, (1.0, 1.0), {"veil": 1.0},
                          0.0, 1, logs.append) == paths
    assert [p.stat().st_mtime_ns for p in paths] == before
    # Another restorer's file, or another seed: the folder's pairs are not theirs, and nothing is written.
    other = tmp_path / "other.onnx"
    other.write_bytes(random_onnx.read_bytes() + b" ")
    for restorer, seed, what in ((other, 0, "restorer"), (random_onnx, 1, "seed")):
        with pytest.raises(ValueError, match=f"another .*{what}"):
            restored_pairs(pool, str(restorer), tmp_path / "pairs", seed, (1.0, 1.0), {"veil": 1.0}, 0.0, 1,
                           logs.append)
    assert [p.stat().st_mtime_ns for p in paths] == before
    (tmp_path / "pairs" / "pairs.json").unlink()  # pairs of unknown origin are refused too
    with pytest.raises(ValueError, match="without pairs.json"):
        restored_pairs(pool, str(random_onnx), tmp_path / "pairs", 0, (1.0, 1.0), {"veil": 1.0}, 0.0, 1,
                       logs.append)
    paths[1].write_bytes(b"not a pair")  # a damaged file is named, never half-read
    with pytest.raises(ValueError, match=paths[1].name):
        load_pair(paths[1])


def test_refine_loss_charges_detail_against_the_clean_and_the_low_band_against_the_restorer() -> None:
    """Only detail may be learnt from the clean photograph: moving the restorer's colour costs, whatever the clean
    photograph's colour; bringing back the clean detail pays."""
    g = torch.Generator().manual_seed(0)
    clean = (0.5 + 0.1 * torch.rand(1, 3, 64, 64, generator=g))
    restored = blur(clean, 2.0) * 0.9 + 0.03  # its detail smoothed away, its colour its own
    as_is, parts = refine_loss(restored, restored, clean, 4.0, 1.0, 0.0)
    assert parts["keep_low"].item() < 2e-3  # Charbonnier's floor (eps 1e-3)
    detail_back = restored - blur(restored, 4.0) + blur(restored, 4.0) + (clean - blur(clean, 4.0)) - (
        restored - blur(restored, 4.0))
    back, parts_back = refine_loss(detail_back, restored, clean, 4.0, 1.0, 0.0)
    assert parts_back["detail"].item() < 0.5 * parts["detail"].item() and back.item() < as_is.item()
    recoloured = restored + 0.05
    _, parts_colour = refine_loss(recoloured, restored, clean, 4.0, 1.0, 0.0)
    assert parts_colour["keep_low"].item() > 0.04
    assert abs(parts_colour["detail"].item() - parts["detail"].item()) < 1e-4
    # The restorer's detail terms, where asked for: the smoothed output lacks the clean local contrast.
    _, with_terms = refine_loss(restored, restored, clean, 4.0, 1.0, 0.0, w_contrast_match=1.0, w_band=1.0)
    assert with_terms["contrast_match"].item() > 0.2 and with_terms["band"].item() > 0.2
    assert parts["contrast_match"].item() == parts["band"].item() == 0.0



def test_a_low_detail_quantile_charges_a_bright_error_more_than_a_dark_one() -> None:
    """detail_quantile 0.3: per pixel, detail brighter than the clean costs 0.7 of the error, darker 0.3 (a rim
    more than a vessel drawn too dark); 0.5 is half the L1 either way. The refiner's detail term is that, doubled."""
    from ftrt.training.refine import pinball

    target = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    assert pinball(target + 0.1, target, 0.3).item() == pytest.approx(0.07)
    assert pinball(target - 0.1, target, 0.3).item() == pytest.approx(0.03)
    assert pinball(torch.zeros(3), torch.tensor([0.0, 1.0, 2.0]), 0.5).item() == pytest.approx(0.5)
    clean = 0.4 + 0.2 * target
    out = clean + 0.02 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(2))
    _, parts = refine_loss(out, clean, clean, 4.0, 1.0, 0.0, detail_quantile=0.3)
    want = 2 * pinball(out - blur(out, 4.0), clean - blur(clean, 4.0), 0.3)
    assert parts["detail"].item() == pytest.approx(want.item(), rel=1e-5)


def test_a_short_run_ships_a_loadable_rf_m(tiny_data: Path, tmp_path: Path, random_onnx: Path) -> None:
    from ftrt.models.pretrained import load_model
    from ftrt.training.config import RefinerConfig
    from ftrt.training.refine import RefinerTrainer

    cfg = RefinerConfig(data=[str(tiny_data)], out=str(tmp_path / "rf"), pairs_dir=str(tmp_path / "pairs"),
                        restorer=str(random_onnx), steps=3, batch_size=2, crop=48, max_side=128, val_images=1,
                        val_every=3, save_every=3, workers=0, warmup=1, threads=1)
    result = RefinerTrainer(cfg, log=lambda m: None).run(progress=False)
    model, meta = load_model(result["weights"])
    assert meta["preset"] == "rf-m" and meta["steps"] == 3 and type(model).__name__ == "Refiner"
    history = json.loads((tmp_path / "rf" / "last" / "state.json").read_text())["history"][0]
    assert {"psnr", "restorer_psnr", "detail_psnr", "restorer_detail_psnr"} <= set(history)
    assert len(list((tmp_path / "pairs").glob("*.npz"))) == 3


def test_a_refined_chain_ships_with_every_parts_card(tiny_data: Path, tmp_path: Path, random_onnx: Path) -> None:
    """ship_chain: a dn-res-rf-s built from a denoiser run, a res-s and a refiner run loads, and its card holds the
    refiner's training and validation beside the denoiser's; a refiner run without a refiner in the chain (or the
    reverse) is refused."""
    from ftrt.models.pretrained import load_model
    from ftrt.training.card import ship_chain
    from ftrt.training.checkpoint import chain_denoiser, save_weights
    from ftrt.training.config import DenoiserConfig, RefinerConfig
    from ftrt.training.denoise import DenoiserTrainer
    from ftrt.training.refine import RefinerTrainer
    from ftrt.models import build_model

    small = dict(data=[str(tiny_data)], steps=2, batch_size=2, crop=48, max_side=128, val_images=1, val_every=2,
                 save_every=2, workers=0, warmup=1, threads=1)
    dn = DenoiserTrainer(DenoiserConfig(model="dn-m", out=str(tmp_path / "dn"), **small), log=lambda m: None)
    dn_weights = dn.run(progress=False)["weights"]
    rf = RefinerTrainer(RefinerConfig(out=str(tmp_path / "rf"), pairs_dir=str(tmp_path / "pairs"),
                                      restorer=str(random_onnx), **small), log=lambda m: None)
    rf_weights = rf.run(progress=False)["weights"]
    kw = {"width": 16, "stages": 3, "affine_head": True}
    save_weights(tmp_path / "res.safetensors", build_model("res-s", **kw).state_dict(),
                 {"preset": "res-s", "kwargs": kw, "work_side": 768, "card_id": "res-s@test", "input": "RGB",
                  "ftrt_version": "test"})
    chain = tmp_path / "chain.safetensors"
    chain_denoiser(dn_weights, tmp_path / "res.safetensors", chain, refiner=rf_weights)
    with pytest.raises(ValueError, match="refiner run"):
        ship_chain(chain, tmp_path / "dn", "x", tmp_path)
    shipped = ship_chain(chain, tmp_path / "dn", "dn-res-rf-s", tmp_path, refiner_run=tmp_path / "rf")
    model, meta = load_model(str(shipped))
    card = json.loads((tmp_path / "dn-res-rf-s.json").read_text())
    assert meta["preset"] == "dn-res-rf-s" and type(model.refiner).__name__ == "Refiner"
    assert card["refiner"]["steps"] == 2 and card["refiner"]["validation_history"]
    assert card["denoiser"]["model"] == "dn-m" and card["restorer"]["card_id"] == "res-s@test"
    assert (tmp_path / "dn-res-rf-s.train-log.jsonl").exists()
