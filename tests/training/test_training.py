from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ftrt.training.card import build_card
from ftrt.training.config import RestorerConfig, load_config
from ftrt.training.restorer import RestorerTrainer, cpu_has_bf16


def _cfg(data: Path, out: Path, **kw: object) -> RestorerConfig:
    base = dict(data=[str(data)], out=str(out), steps=4, batch_size=2, crop=48, max_side=128, val_images=1,
                val_every=1000, save_every=1000, workers=0, warmup=1, threads=1, lr=1e-3)
    base.update(kw)
    return RestorerConfig(**base)  # type: ignore[arg-type]


def test_a_few_steps_lower_the_loss(tiny_data: Path, tmp_path: Path) -> None:
    trainer = RestorerTrainer(_cfg(tiny_data, tmp_path / "run", steps=40, ema_decay=0.9), log=lambda m: None)
    lq, gt = next(iter(trainer.loader()))
    before = trainer.train_step(lq, gt)["pixel"]
    for _ in range(30):
        last = trainer.train_step(lq, gt)["pixel"]
    assert last < 0.7 * before


def test_checkpoint_resume_reproduces_an_uninterrupted_run(tiny_data: Path, tmp_path: Path) -> None:
    straight = RestorerTrainer(_cfg(tiny_data, tmp_path / "a"), log=lambda m: None)
    straight.run(progress=False)

    first = RestorerTrainer(_cfg(tiny_data, tmp_path / "b"), log=lambda m: None)
    first.run(progress=False, until=2)  # interrupted half-way
    # A fresh process-like trainer picks up at step 2 and must land on the same weights.
    second = RestorerTrainer(_cfg(tiny_data, tmp_path / "b"), log=lambda m: None)
    second.resume(tmp_path / "b" / "last")
    assert second.step == 2
    second.run(progress=False)
    for (k, a), (_, b) in zip(straight.model.state_dict().items(), second.model.state_dict().items()):
        assert torch.allclose(a, b, atol=1e-6), k
    for a, b in zip(straight.ema.parameters(), second.ema.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


def test_final_weights_load_back(tiny_data: Path, tmp_path: Path) -> None:
    from ftrt.models.pretrained import load_model

    result = RestorerTrainer(_cfg(tiny_data, tmp_path / "run", steps=2), log=lambda m: None).run(progress=False)
    model, meta = load_model(result["weights"])
    assert meta["preset"] == "res-s" and meta["steps"] == 2
    assert meta["input"]["pad_multiple"] == 8
    # The run folder itself names its final weights (what `ftrt export --model RUN_DIR` passes).
    assert load_model(str(tmp_path / "run"))[1]["weights"] == str(tmp_path / "run" / "final.safetensors")


def test_config_yaml_and_overrides(tmp_path: Path) -> None:
    y = tmp_path / "c.yaml"
    y.write_text("steps: 77\nlr: 0.001\nmodel: res-m\n")
    cfg = load_config(RestorerConfig, y, {"lr": 0.002}, ["batch_size=3", "data=a,b"])
    assert (cfg.steps, cfg.lr, cfg.model, cfg.batch_size, cfg.data) == (77, 0.002, "res-m", 3, ["a", "b"])
    with pytest.raises(ValueError, match="unknown option 'nope'"):
        load_config(RestorerConfig, None, None, ["nope=1"])


def test_perceptual_and_gan_terms_train(tiny_data: Path, tmp_path: Path) -> None:
    """With a (frozen) feature net and the discriminator on, a step runs and reports every term."""
    feat = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU())

    class Multi(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
            return [feat(x)]

    trainer = RestorerTrainer(_cfg(tiny_data, tmp_path / "run", w_perceptual=0.1, w_gan=0.01), perceptual=Multi(),
                              log=lambda m: None)
    lq, gt = next(iter(trainer.loader()))
    rec = trainer.train_step(lq, gt)
    assert {"pixel", "identity", "perceptual", "gan", "disc"} <= set(rec)
    assert all(np.isfinite(v) for v in rec.values())


def test_fine_tuning_may_add_a_head_but_not_change_the_network(tiny_data: Path, tmp_path: Path) -> None:
    """--init from weights without the global head: the head starts at zero, the rest is loaded unchanged."""
    from ftrt.models.pretrained import load_model

    base = RestorerTrainer(_cfg(tiny_data, tmp_path / "a", steps=2, affine_head=True), log=lambda m: None)
    weights = base.run(progress=False)["weights"]
    tuned = RestorerTrainer(_cfg(tiny_data, tmp_path / "b", affine_head=True, global_head=True, init=weights),
                            log=lambda m: None)
    x = torch.rand(1, 3, 40, 56)
    with torch.no_grad():
        assert torch.equal(tuned.model(x), load_model(weights)[0](x))
    with pytest.raises(ValueError, match="init"):
        RestorerTrainer(_cfg(tiny_data, tmp_path / "c", init=weights), log=lambda m: None)  # drops a head
    with pytest.raises(ValueError, match="init"):
        RestorerTrainer(_cfg(tiny_data, tmp_path / "d", model="res-m", affine_head=True, init=weights),
                        log=lambda m: None)


def test_fine_tuning_may_deepen_the_bottleneck_but_never_shallow_it(tiny_data: Path, tmp_path: Path) -> None:
    """bottleneck_blocks: the trained blocks load unchanged, the appended ones start next to the identity (layer
    scale 1e-5), the weights record the depth and load back; fewer blocks than the init's is refused."""
    from ftrt.models.pretrained import load_model

    weights = RestorerTrainer(_cfg(tiny_data, tmp_path / "a", steps=2, affine_head=True),
                              log=lambda m: None).run(progress=False)["weights"]
    deep = RestorerTrainer(_cfg(tiny_data, tmp_path / "b", affine_head=True, bottleneck_blocks=5, init=weights,
                                steps=2), log=lambda m: None)
    assert len(deep.model.bottleneck.blocks) == 5
    x = torch.rand(1, 3, 40, 56)
    with torch.no_grad():
        assert torch.allclose(deep.model(x), load_model(weights)[0](x), atol=1e-4)
    out = deep.run(progress=False)["weights"]
    reloaded, meta = load_model(out)
    assert meta["kwargs"]["bottleneck_blocks"] == 5 and len(reloaded.bottleneck.blocks) == 5
    opened = RestorerTrainer(_cfg(tiny_data, tmp_path / "e", affine_head=True, bottleneck_blocks=5, init=weights,
                                  new_block_scale=0.01), log=lambda m: None).model
    new, trained = opened.bottleneck.blocks[3], load_model(weights)[0].bottleneck.blocks[0]
    assert torch.all(new.scale == 0.01) and not new.fc2.weight.any() and torch.equal(
        opened.bottleneck.blocks[0].scale, trained.scale)
    with torch.no_grad():
        assert torch.allclose(opened(x), load_model(weights)[0](x), atol=1e-6)
    fast = RestorerTrainer(_cfg(tiny_data, tmp_path / "f", affine_head=True, bottleneck_blocks=5, init=weights,
                                new_block_scale=0.01, new_lr_scale=10.0), log=lambda m: None)
    trained_group, new_group = fast.opt.param_groups
    ids = {id(p) for b in list(fast.model.bottleneck.blocks)[3:] for p in b.parameters()}
    assert {id(p) for p in new_group["params"]} == ids and not ids & {id(p) for p in trained_group["params"]}
    fast.step = 2
    fast.set_lr()
    assert new_group["lr"] == pytest.approx(10 * trained_group["lr"]) and trained_group["lr"] > 0
    fast.run(progress=False)  # the two groups train
    with pytest.raises(ValueError, match="init"):
        RestorerTrainer(_cfg(tiny_data, tmp_path / "c", affine_head=True, bottleneck_blocks=2, init=weights),
                        log=lambda m: None)
    with pytest.raises(ValueError, match="init"):  # and back to the preset's depth from a deeper one
        RestorerTrainer(_cfg(tiny_data, tmp_path / "d", affine_head=True, init=out), log=lambda m: None)


def test_colour_head_fit_on_whole_photographs(tiny_data: Path, tmp_path: Path) -> None:
    """`ftrt train colour-head`: adds the global head to frozen weights and fits it; the rest stays as it was."""
    from dataclasses import replace

    from click.testing import CliRunner

    from ftrt.cli import main
    from ftrt.models.pretrained import load_model
    from ftrt.training.colour_head import ColourHeadConfig, fit_colour_head

    plain = RestorerTrainer(_cfg(tiny_data, tmp_path / "plain", steps=1), log=lambda m: None).run(progress=False)
    res = CliRunner().invoke(main, ["train", "colour-head", "--init", plain["weights"], "--data", str(tiny_data),
                                    "--out", str(tmp_path / "x"), "--offset-only", "--no-progress"])
    assert res.exit_code != 0 and "no affine head" in res.output
    base = RestorerTrainer(_cfg(tiny_data, tmp_path / "a", steps=2, affine_head=True), log=lambda m: None)
    weights = base.run(progress=False)["weights"]
    cfg = ColourHeadConfig(init=weights, data=[str(tiny_data)], out=str(tmp_path / "head"), samples=3, steps=20,
                           batch_size=2, lr=3e-3, val_images=1, work_side=96)
    result = fit_colour_head(cfg, progress=False, log=lambda m: None)
    tuned, meta = load_model(result["weights"])
    assert meta["kwargs"]["global_head"] and meta["colour_head"]["init"] == weights and len(result["history"]) == 2
    assert all(np.isfinite(h["val_psnr"]) for h in result["history"])
    assert tuned.global_head[2].weight.abs().sum() > 0
    frozen = load_model(weights)[0].state_dict()
    assert all(torch.equal(v, frozen[k]) for k, v in tuned.state_dict().items() if not k.startswith("global_head."))
    # --offset-only: the head learns shifts and its gain outputs stay exactly zero, so no photograph's contrast
    # is scaled.
    shifted = fit_colour_head(replace(cfg, out=str(tmp_path / "shift"), offset_only=True), progress=False,
                              log=lambda m: None)
    shift, meta = load_model(shifted["weights"])
    last = shift.global_head[2]
    assert meta["colour_head"]["offset_only"] and last.weight[3:].abs().sum() > 0 and last.bias[3:].abs().sum() > 0
    assert torch.equal(last.weight[:3], torch.zeros_like(last.weight[:3]))
    assert torch.equal(last.bias[:3], torch.zeros_like(last.bias[:3]))


def test_physical_pairs_with_edge_loss_scale_and_fast_layouts(tiny_data: Path, tmp_path: Path) -> None:
    """The default recipe's options: physical degradations, edge loss, rescaling, bf16 autocast (where the CPU
    has it) and channels_last; the run finishes and its weights load with the recipe recorded."""
    from ftrt.models.pretrained import load_model

    cfg = _cfg(tiny_data, tmp_path / "run", steps=2, kind="real", val_kind="real", w_edge=0.3, w_identity=1.0,
               scale_min=0.75, scale_max=1.4, bf16=True, channels_last=True, mean_free_pixel=True, w_keep_mean=0.2)
    trainer = RestorerTrainer(cfg, log=lambda m: None)
    lq, gt = next(iter(trainer.loader()))
    rec = trainer.train_step(lq, gt)
    assert {"pixel", "edge", "identity", "keep_mean"} <= set(rec) and all(np.isfinite(v) for v in rec.values())
    result = trainer.run(progress=False)
    model, meta = load_model(result["weights"])
    assert meta["kind"] == "real" and meta["steps"] == 2
    # The weights and the card say whether bf16 ran here, whichever CPU this is.
    assert meta["bf16"] is trainer.bf16 and trainer.bf16 == cpu_has_bf16()
    assert build_card(tmp_path / "run", "t")["training"]["speed"]["bf16"] is trainer.bf16


def test_edge_loss_sees_detail_not_global_colour() -> None:
    from ftrt.training.losses import edge_loss

    x = torch.rand(1, 3, 32, 32)
    assert edge_loss(x + 0.2, x) < 1.1e-3  # a global shift has no Laplacian (the floor is eps)
    assert edge_loss(torch.nn.functional.avg_pool2d(x, 3, 1, 1), x) > 0.05  # blur loses detail


def test_mean_free_loss_ignores_global_colour_but_not_structure() -> None:
    from ftrt.training.losses import keep_mean_loss, mean_free_pixel_loss, pixel_loss

    gen = torch.Generator().manual_seed(0)
    gt = torch.rand(2, 3, 32, 32, generator=gen) * 0.5 + 0.2
    gt[..., :4] = 0.0  # a black FOV surround: outside the means and the loss
    shifted = torch.where(gt > 0, gt + torch.tensor([0.1, -0.05, 0.02])[None, :, None, None], gt)
    assert mean_free_pixel_loss(shifted, gt) < 1e-6 < pixel_loss(shifted, gt)
    flat = torch.where(gt > 0, gt.mean(dim=(2, 3), keepdim=True).expand_as(gt), gt)
    assert mean_free_pixel_loss(flat, gt) > 0.02  # lost structure still costs
    assert keep_mean_loss(shifted, shifted) == 0 and keep_mean_loss(shifted, gt) > 0.02


def test_structure_psnr_ignores_global_colour_but_not_contrast() -> None:
    from ftrt.metrics import psnr, structure_psnr

    rng = np.random.default_rng(0)
    ref = rng.random((48, 48, 3)).astype(np.float32) * 0.5 + 0.25
    mask = np.ones((48, 48), bool)
    mask[:4] = False
    shifted = ref + np.array([0.1, -0.05, 0.02], np.float32)
    assert psnr(shifted, ref, mask) < 25 and structure_psnr(shifted, ref, mask) > 100  # float32 rounding only
    flat = ref.mean() + 0.5 * (ref - ref.mean())  # contrast halved: a structure error
    assert structure_psnr(flat, ref, mask) < 30


def test_validation_reports_the_input_beside_the_model(tiny_data: Path, tmp_path: Path) -> None:
    trainer = RestorerTrainer(_cfg(tiny_data, tmp_path / "run", kind="real", val_kind="real"), log=lambda m: None)
    v = trainer.validate()
    # Untrained: the zero head makes the model the identity, so it scores what its input scores.
    assert v["psnr"] == pytest.approx(v["input_psnr"], abs=1e-3)
    assert v["psnr_structure"] == pytest.approx(v["input_psnr_structure"], abs=1e-3)


def test_contrast_loss_penalises_smoothing_only() -> None:
    """Zero for the clean crop, a sharper one or a brighter one; the lacking share for a smoothed one."""
    import torch.nn.functional as F

    from ftrt.training.losses import contrast_loss

    torch.manual_seed(0)
    clean = torch.rand(2, 3, 48, 48) * 0.5 + 0.2
    smooth = F.avg_pool2d(clean, 3, 1, 1, count_include_pad=False)
    assert contrast_loss(clean, clean).item() == 0.0
    assert contrast_loss(clean, smooth).item() == 0.0  # more contrast than the target is not penalised
    assert contrast_loss(clean + 0.1, clean).item() < 1e-5  # a brighter copy keeps its local contrast
    assert 0.3 < contrast_loss(smooth, clean).item() < 1.0


def test_contrast_match_penalises_too_little_and_too_much_but_not_the_rim() -> None:
    """Zero for the clean crop; the same for half and for double its local contrast about a smooth base; and
    a brighter FOV rim (where the blur meets the black surround) does not count as contrast."""
    import torch.nn.functional as F

    from ftrt.training.losses import contrast_loss, contrast_match_loss

    torch.manual_seed(0)
    base = torch.full((1, 3, 64, 64), 0.5)
    detail = F.avg_pool2d(torch.rand(1, 1, 64, 64), 3, 1, 1, count_include_pad=False) - 0.5
    clean = base + 0.2 * detail
    assert contrast_match_loss(clean, clean).item() == 0.0
    less, more = contrast_match_loss(base + 0.1 * detail, clean), contrast_match_loss(base + 0.4 * detail, clean)
    assert 0.45 < less.item() < 0.55 and 0.95 < more.item() < 1.05
    assert contrast_loss(base + 0.4 * detail, clean).item() == 0.0  # the one-sided loss lets "more" pass
    fov = torch.zeros(1, 1, 64, 64)
    fov[..., 4:60, 4:60] = 1
    rim = fov - (-F.max_pool2d(-fov, 5, stride=1, padding=2))  # a 2 px ring inside the FOV's edge
    assert contrast_match_loss((clean + 0.3 * rim) * fov, clean * fov).item() < 0.01


def test_contrast_map_sees_contrast_moved_from_one_place_to_another() -> None:
    """Twice the detail on the left and none on the right has the clean crop's mean local contrast, so the
    per-crop match misses it; the map match does not."""
    import torch.nn.functional as F

    from ftrt.training.losses import contrast_map_loss, contrast_match_loss

    torch.manual_seed(0)
    detail = F.avg_pool2d(torch.rand(1, 1, 96, 96), 3, 1, 1, count_include_pad=False) - 0.5
    clean = 0.5 + 0.2 * detail.expand(1, 3, 96, 96)
    moved = clean.clone()
    moved[..., :48] = 0.5 + 0.4 * detail[..., :48]
    moved[..., 48:] = 0.5
    assert contrast_map_loss(clean, clean).item() == 0.0
    assert contrast_match_loss(moved, clean).item() < 0.15
    assert contrast_map_loss(moved, clean).item() > 0.6


def test_band_loss_wants_the_clean_detail_in_its_place() -> None:
    """Zero for the clean crop; the clean amount of detail in the wrong place (shifted by a vessel's width)
    costs more than having no detail at all, which the contrast terms cannot see; a global brightness change
    is free."""
    import torch.nn.functional as F

    from ftrt.training.losses import band_loss, contrast_match_loss

    torch.manual_seed(0)
    detail = F.avg_pool2d(torch.rand(1, 1, 96, 96), 5, 1, 2, count_include_pad=False) - 0.5
    clean = 0.5 + 0.3 * detail.expand(1, 3, 96, 96)
    shifted = clean.roll(4, dims=-1)
    flat = torch.full_like(clean, 0.5)
    assert band_loss(clean, clean).item() == 0.0
    assert band_loss(clean + 0.1, clean).item() < 1e-4
    assert contrast_match_loss(shifted, clean).item() < 0.05  # the right amount: the contrast term is content
    assert 0.9 < band_loss(flat, clean).item() < 1.1
    assert band_loss(shifted, clean).item() > 1.2 * band_loss(flat, clean).item()


def test_ridge_loss_wants_the_clean_vessels_and_no_others() -> None:
    """Zero for the clean crop and blind to an offset; a veil that halves every vessel's contrast costs half, and
    so does one that doubles it (no spreading the photograph's contrast can stand in for its lines); a vessel
    lost, a vessel moved, or a vessel drawn where the clean crop has none all cost. Speckle as dark in total as an invented vessel costs the band
    term more than twice what the vessel does, and this term less than the vessel: it charges lines, not texture."""
    from ftrt.training.losses import band_loss, ridge_loss

    yy, xx = torch.meshgrid(torch.arange(96.0), torch.arange(96.0), indexing="ij")

    def line(x0: float) -> torch.Tensor:
        """A dark vertical vessel 3 px wide at column x0."""
        return torch.exp(-((xx - x0) ** 2) / (2 * 1.2**2))

    def photo(dark: torch.Tensor) -> torch.Tensor:
        return (0.6 - 0.2 * dark).expand(1, 3, 96, 96).clone()

    clean = photo(line(40))
    assert ridge_loss(clean, clean).item() == 0.0
    assert ridge_loss(clean + 0.2, clean).item() < 1e-3
    assert 0.45 < ridge_loss(0.5 * clean + 0.3, clean).item() < 0.55
    assert 0.9 < ridge_loss(2 * clean - 0.6, clean).item() < 1.1
    wider = clean + 0.2 * (yy / 95 - 0.5)  # a smooth ramp: more spread, the same lines
    assert ridge_loss(wider, clean).item() < 0.05
    lost = ridge_loss(photo(torch.zeros(96, 96)) + 1e-3 * torch.randn(1, 3, 96, 96), clean).item()
    moved = ridge_loss(photo(line(48)), clean).item()
    invented = photo(line(40) + line(70))
    assert lost > 0.9 and moved > 1.5 and ridge_loss(invented, clean).item() > 0.7
    torch.manual_seed(0)
    specks = (torch.rand(96, 96) > 0.97).float()
    spotty = photo(line(40) + specks * line(70).sum() / specks.sum())
    bands = (0.0, 1.0, 2.0, 4.0, 8.0)
    assert band_loss(spotty, clean, bands).item() > 2 * band_loss(invented, clean, bands).item()
    assert ridge_loss(spotty, clean).item() < ridge_loss(invented, clean).item()


def test_chain_parts_from_their_own_runs_and_a_frozen_part_stays(tiny_data: Path, tmp_path: Path) -> None:
    """light-res-s: the light corrector from a light run, the detail restorer from a res-s run; with the light
    part frozen, training moves only the detail part, and the final weights load back as one model."""
    from ftrt.models.pretrained import load_model

    light = RestorerTrainer(_cfg(tiny_data, tmp_path / "l", model="light", square=True, crop=64, max_side=64),
                            log=lambda m: None).run(progress=False)["weights"]
    detail = RestorerTrainer(_cfg(tiny_data, tmp_path / "d", affine_head=True), log=lambda m: None).run(
        progress=False)["weights"]
    chain = RestorerTrainer(_cfg(tiny_data, tmp_path / "c", model="light-res-s", init_parts=[
        f"light={light}", f"detail={detail}"], freeze=["light"], steps=3), log=lambda m: None)
    light_m, detail_m = load_model(light)[0], load_model(detail)[0]
    x = torch.rand(1, 3, 64, 80)
    with torch.no_grad():
        assert torch.equal(chain.model(x), detail_m(light_m(x)))
    before = {k: v.clone() for k, v in chain.model.state_dict().items()}
    final, _ = load_model(chain.run(progress=False)["weights"])
    after = chain.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("light."))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("detail."))
    assert type(final).__name__ == "LightThenDetail"
    with pytest.raises(ValueError, match="light"):
        RestorerTrainer(_cfg(tiny_data, tmp_path / "e", model="light-res-s", init_parts=[f"light={detail}"]),
                        log=lambda m: None)
    with pytest.raises(ValueError, match="no part 'colour'"):
        RestorerTrainer(_cfg(tiny_data, tmp_path / "f", model="light-res-s", freeze=["colour"]), log=lambda m: None)


def test_family_probability_is_checked_before_training_and_recorded(tiny_data: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="kind 'real'"):
        RestorerTrainer(_cfg(tiny_data, tmp_path / "a", kind="mixed", family_probability={"veil": 0.8}),
                        log=lambda m: None)
    with pytest.raises(ValueError, match="unknown degradation families"):
        RestorerTrainer(_cfg(tiny_data, tmp_path / "b", kind="real", family_probability={"vail": 0.8}),
                        log=lambda m: None)
    trainer = RestorerTrainer(_cfg(tiny_data, tmp_path / "c", kind="real", family_probability={"veil": 1.0}),
                              log=lambda m: None)
    assert trainer.dataset.probability == {"veil": 1.0}
    cfg = load_config(RestorerConfig, None, sets=["kind=real", "family_probability=veil:0.8,motion:0.25"])
    assert cfg.family_probability == {"veil": 0.8, "motion": 0.25}


def test_family_ranges_are_checked_before_training_and_recorded(tiny_data: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="kind 'real'"):
        RestorerTrainer(_cfg(tiny_data, tmp_path / "a", kind="mixed", family_ranges={"veil.t": [0.5, 0.6]}),
                        log=lambda m: None)
    with pytest.raises(ValueError, match="unknown family"):
        RestorerTrainer(_cfg(tiny_data, tmp_path / "b", kind="real", family_ranges={"vail.t": [0.5, 0.6]}),
                        log=lambda m: None)
    ranges = {"veil.t_var": [0.4, 0.45]}
    trainer = RestorerTrainer(_cfg(tiny_data, tmp_path / "c", kind="real", family_probability={"veil": 1.0},
                                   family_ranges=ranges, steps=2), log=lambda m: None)
    assert trainer.dataset.ranges == {"veil.t_var": (0.4, 0.45)}
    trainer.run(progress=False)
    assert build_card(tmp_path / "c", "t")["training"]["family_ranges"] == ranges


def test_input_bits_rounds_degraded_inputs_as_a_file_stores_them(tiny_data: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="input_bits"):
        RestorerTrainer(_cfg(tiny_data, tmp_path / "a", kind="real", input_bits=1), log=lambda m: None)
    floats = RestorerTrainer(_cfg(tiny_data, tmp_path / "b", kind="real"), log=lambda m: None)
    eight = RestorerTrainer(_cfg(tiny_data, tmp_path / "c", kind="real", input_bits=8), log=lambda m: None)
    for i in range(4):
        lq_f, gt_f = floats.dataset[i]
        lq_8, gt_8 = eight.dataset[i]
        # The same draw, the clean target untouched; only the degraded input lands on the 256-level grid.
        assert torch.equal(gt_f, gt_8)
        levels = lq_8 * 255
        assert torch.allclose(levels, levels.round(), atol=1e-4)
        assert float((lq_8 - lq_f).abs().max()) <= 0.5 / 255 + 1e-6
    assert not torch.allclose(lq_f * 255, (lq_f * 255).round(), atol=1e-4)  # float inputs stay float
    for lq, _, _ in eight.val_set:
        assert np.allclose(lq * 255, np.round(lq * 255), atol=1e-3)
    eight.run(progress=False)
    assert json.loads((tmp_path / "c" / "config.json").read_text())["input_bits"] == 8
    assert build_card(tmp_path / "c", "t")["training"]["input_bits"] == 8


def _stripes(shape: tuple[int, ...], period: float = 3.5, amplitude: float = 0.02) -> torch.Tensor:
    """Horizontal stripes (constant along rows), the texture stage 9 painted into every photograph."""
    rows = torch.arange(shape[-2], dtype=torch.float32)
    return amplitude * torch.sin(2 * torch.pi * rows / period).view(1, 1, -1, 1).expand(*shape)


def test_fine_stripes_pay_the_contrast_term_unless_it_looks_through_a_blur() -> None:
    """An output that lacks the clean photograph's vessel-scale detail (a blurred copy) brings the contrast
    term down with fine stripes of its own; seen through a sigma-1 blur they buy almost nothing."""
    import torch.nn.functional as F

    from ftrt.training.losses import contrast_match_loss

    torch.manual_seed(0)
    detail = F.avg_pool2d(torch.rand(1, 1, 96, 96), 5, 1, 2, count_include_pad=False) - 0.5
    clean = 0.5 + 0.3 * detail.expand(1, 3, 96, 96)
    blurred = 0.5 + 0.15 * detail.expand(1, 3, 96, 96)
    striped = blurred + _stripes(blurred.shape, amplitude=0.008)
    plain_gain = contrast_match_loss(blurred, clean) - contrast_match_loss(striped, clean)
    fine_gain = contrast_match_loss(blurred, clean, fine=1.0) - contrast_match_loss(striped, clean, fine=1.0)
    assert plain_gain.item() > 0.2  # of the 0.5 the blurred copy owes
    assert fine_gain.item() < 0.2 * plain_gain.item()
    assert contrast_match_loss(clean, clean, fine=1.0).item() == 0.0


def test_the_finest_band_charges_a_texture_the_clean_photograph_lacks() -> None:
    import torch.nn.functional as F

    from ftrt.training.losses import band_loss

    torch.manual_seed(0)
    detail = F.avg_pool2d(torch.rand(1, 1, 96, 96), 5, 1, 2, count_include_pad=False) - 0.5
    clean = 0.5 + 0.3 * detail.expand(1, 3, 96, 96)
    striped = clean + _stripes(clean.shape, period=2.5)
    shipped, finest = (1.0, 2.0, 4.0, 8.0), (0.0, 1.0, 2.0, 4.0, 8.0)
    assert band_loss(clean, clean, finest).item() == 0.0
    # Below the shipped bands the stripes cost little; the finest band charges them several times as much.
    cheap, charged = band_loss(striped, clean, shipped).item(), band_loss(striped, clean, finest).item()
    assert cheap < 0.1 and charged > 3 * cheap


def test_band_and_contrast_options_are_checked_before_training_and_recorded(tiny_data: Path,
                                                                            tmp_path: Path) -> None:
    for bad in ([1.0], [2.0, 1.0], [-1.0, 1.0], [0.0, 0.0, 1.0]):
        with pytest.raises(ValueError, match="band_sigmas"):
            RestorerTrainer(_cfg(tiny_data, tmp_path / "a", band_sigmas=bad), log=lambda m: None)
    with pytest.raises(ValueError, match="contrast_fine_sigma"):
        RestorerTrainer(_cfg(tiny_data, tmp_path / "a", contrast_fine_sigma=-1.0), log=lambda m: None)
    for bad in ([], [0.0, 1.0], [float("nan")]):
        with pytest.raises(ValueError, match="ridge_sigmas"):
            RestorerTrainer(_cfg(tiny_data, tmp_path / "a", ridge_sigmas=bad), log=lambda m: None)
    trainer = RestorerTrainer(_cfg(tiny_data, tmp_path / "c", w_band=1.0, band_sigmas=[0.0, 1.0, 2.0],
                                   w_ridge=0.5, ridge_sigmas=[1.0, 2.0],
                                   w_contrast_match=1.0, contrast_fine_sigma=1.0, deinterlace=True, steps=2),
                              log=lambda m: None)
    trainer.run(progress=False)
    training = build_card(tmp_path / "c", "t")["training"]
    assert training["band_sigmas"] == [0.0, 1.0, 2.0]
    assert training["contrast_fine_sigma"] == 1.0 and training["deinterlace"] is True
    assert training["losses"]["w_ridge"] == 0.5 and training["ridge_sigmas"] == [1.0, 2.0]
    RestorerTrainer(_cfg(tiny_data, tmp_path / "d", steps=1), log=lambda m: None).run(progress=False)
    plain = build_card(tmp_path / "d", "t")["training"]
    assert not {"band_sigmas", "contrast_fine_sigma", "deinterlace"} & set(plain) and plain["ridge_sigmas"] is None


def test_averaged_weights_run_between_their_parents_and_refuse_strangers(tmp_path: Path) -> None:
    """The average of two res-s files is their parameter midpoint, loads as a model whose output lies between
    the parents' (the soup a selection can weigh against its parents), records what it was made from and
    carries no validation figure; a file of another architecture is refused, naming it."""
    import subprocess
    import sys

    from ftrt.models.pretrained import load_model
    from ftrt.models.registry import build_model as build
    from ftrt.training.checkpoint import average_weights, load_weights, save_weights

    torch.manual_seed(0)
    a, b = build("res-s", width=8, stages=2), build("res-s", width=8, stages=2)
    with torch.no_grad():  # a fresh res-s is the identity: move both away from it, differently
        for p in [*a.parameters(), *b.parameters()]:
            p.add_(0.05 * torch.randn_like(p))
    meta = {"preset": "res-s", "kwargs": {"width": 8, "stages": 2}, "steps": 5, "validation": {"psnr": 30.0}}
    save_weights(tmp_path / "a.safetensors", a.state_dict(), meta)
    save_weights(tmp_path / "b.safetensors", b.state_dict(), {**meta, "steps": 9})
    got = average_weights([tmp_path / "a.safetensors", tmp_path / "b.safetensors"], tmp_path / "ab.safetensors")
    assert got["averaged_from"] == [{"file": "a.safetensors", "steps": 5, "share": 0.5},
                                    {"file": "b.safetensors", "steps": 9, "share": 0.5}]
    state, meta_ab = load_weights(tmp_path / "ab.safetensors")
    assert "validation" not in meta_ab
    for k, v in a.state_dict().items():
        torch.testing.assert_close(state[k], (v + b.state_dict()[k]) / 2)
    mid = load_model(str(tmp_path / "ab.safetensors"))[0].eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        ya, yb, ym = a.eval()(x), b.eval()(x), mid(x)
    assert (ym - (ya + yb) / 2).abs().max() < (ya - yb).abs().max()
    average_weights([tmp_path / "a.safetensors", tmp_path / "b.safetensors"], tmp_path / "q.safetensors", [3, 1])
    quarter = load_weights(tmp_path / "q.safetensors")[0]
    for k, v in a.state_dict().items():
        torch.testing.assert_close(quarter[k], 0.75 * v + 0.25 * b.state_dict()[k])
    with pytest.raises(ValueError, match="shares"):
        average_weights([tmp_path / "a.safetensors", tmp_path / "b.safetensors"], tmp_path / "z.safetensors", [1, -1])

    other = build("res-s", width=8, stages=3)
    save_weights(tmp_path / "c.safetensors", other.state_dict(), {**meta, "kwargs": {"width": 8, "stages": 3}})
    with pytest.raises(ValueError, match="c.safetensors"):
        average_weights([tmp_path / "a.safetensors", tmp_path / "c.safetensors"], tmp_path / "ac.safetensors")
    tool = Path(__file__).resolve().parents[2] / "tools" / "average_weights.py"
    run = subprocess.run([sys.executable, str(tool), str(tmp_path / "x.safetensors"), str(tmp_path / "a.safetensors"),
                          str(tmp_path / "c.safetensors")], capture_output=True, text=True)
    assert run.returncode != 0 and "c.safetensors" in run.stderr and not (tmp_path / "x.safetensors").exists()


def test_a_deepened_copy_passes_the_new_blocks_through_and_averages_with_its_donor(tmp_path: Path) -> None:
    import subprocess
    import sys

    from ftrt.models.pretrained import load_model
    from ftrt.models.registry import build_model as build
    from ftrt.training.checkpoint import average_weights, deepen_weights, save_weights

    torch.manual_seed(0)
    kw = {"width": 8, "stages": 2}
    base, donor = build("res-s", **kw), build("res-s", **kw, bottleneck_blocks=5)
    with torch.no_grad():  # move both away from the identity, the donor's new blocks too
        for p in [*base.parameters(), *donor.parameters()]:
            p.add_(0.05 * torch.randn_like(p))
    save_weights(tmp_path / "base.safetensors", base.state_dict(), {"preset": "res-s", "kwargs": kw, "steps": 5})
    save_weights(tmp_path / "donor.safetensors", donor.state_dict(),
                 {"preset": "res-s", "kwargs": {**kw, "bottleneck_blocks": 5}, "steps": 9})
    meta = deepen_weights(tmp_path / "base.safetensors", tmp_path / "donor.safetensors", tmp_path / "deep.safetensors")
    assert meta["kwargs"]["bottleneck_blocks"] == 5 and meta["steps"] == 5
    deep = load_model(str(tmp_path / "deep.safetensors"))[0]
    x = torch.rand(1, 3, 32, 40)
    with torch.no_grad():
        torch.testing.assert_close(deep(x), base.eval()(x), atol=1e-4, rtol=0)
    average_weights([tmp_path / "deep.safetensors", tmp_path / "donor.safetensors"], tmp_path / "soup.safetensors")
    with pytest.raises(ValueError, match="donor"):  # a shallower "donor" is not a deepening
        deepen_weights(tmp_path / "donor.safetensors", tmp_path / "base.safetensors", tmp_path / "x.safetensors")
    tool = Path(__file__).resolve().parents[2] / "tools" / "deepen_weights.py"
    run = subprocess.run([sys.executable, str(tool), str(tmp_path / "y.safetensors"), str(tmp_path / "donor.safetensors"),
                          str(tmp_path / "base.safetensors")], capture_output=True, text=True)
    assert run.returncode != 0 and "base.safetensors" in run.stderr and not (tmp_path / "y.safetensors").exists()


def test_noise_gate_turns_contrast_match_off_where_noise_is_the_contrast() -> None:
    """A veiled crop (a fifth of the clean detail) keeps the contrast-match term, with or without a brightness
    change; the same crop under sensor noise of several times its remaining detail loses it; the ratio does not
    care how bright the crop is; and a weight of 0 takes a crop's share out of the term."""
    import torch.nn.functional as F

    from ftrt.models.denoise import noise_contrast_ratio
    from ftrt.training.losses import contrast_match_loss, noise_gate

    torch.manual_seed(0)
    detail = F.avg_pool2d(torch.rand(1, 1, 96, 96), 5, 1, 2, count_include_pad=False) - 0.5
    clean = (0.5 + 0.3 * detail).expand(1, 3, 96, 96).contiguous()
    veiled = 0.6 + 0.2 * (clean - 0.5)
    noisy = veiled + 0.02 * torch.randn(1, 3, 96, 96)
    fov = torch.ones(1, 1, 96, 96)
    assert noise_contrast_ratio(clean, fov).item() < 0.7
    assert noise_contrast_ratio(noisy, fov).item() > 1.0
    assert abs(noise_contrast_ratio(0.5 * noisy, fov).item() - noise_contrast_ratio(noisy, fov).item()) < 1e-4
    both = torch.cat([veiled, noisy])
    w = noise_gate(both, torch.cat([clean, clean]), 0.9, 1.2)
    assert w[0].item() == 1.0 and w[1].item() == 0.0
    pred = torch.cat([veiled, veiled])
    full = contrast_match_loss(pred, torch.cat([clean, clean]))
    gated = contrast_match_loss(pred, torch.cat([clean, clean]), weights=w)
    assert full.item() > 0.5 and abs(gated.item() - full.item() / 2) < 1e-6


def test_contrast_noise_gate_is_checked(tmp_path: Path) -> None:
    for gate in ([1.2, 0.9], [0.9], [-0.1, 1.0]):
        with pytest.raises(ValueError, match="contrast_noise_gate"):
            RestorerTrainer(_cfg(tmp_path, tmp_path / "out", contrast_noise_gate=gate))


def test_a_gated_step_trains(tiny_data: Path, tmp_path: Path) -> None:
    """The gate reaches the term through train_step: a step with it runs and scores the term."""
    trainer = RestorerTrainer(_cfg(tiny_data, tmp_path / "run", w_contrast_match=1.0, contrast_noise_gate=[0.9, 1.2]),
                              log=lambda m: None)
    lq, gt = next(iter(trainer.loader()))
    terms = trainer.train_step(lq, gt)
    assert np.isfinite(terms["contrast_match"]) and terms["contrast_match"] >= 0


def test_denoiser_pairs_are_exact_and_a_short_run_ships_a_loadable_dn_s(tiny_data: Path, tmp_path: Path) -> None:
    """ftrt train denoiser: a pair differs only by the noise (and 8-bit rounding) inside the FOV, a noise-free
    pair only by the rounding; a few steps run, validate and write dn-s weights that load back."""
    from ftrt.models.pretrained import load_model
    from ftrt.training.config import DenoiserConfig
    from ftrt.training.data import load_pool
    from ftrt.training.denoise import DenoiserTrainer, NoisePairDataset

    pool, _ = load_pool([str(tiny_data)], 128)
    noisy_ds = NoisePairDataset(pool, 48, 0, (1.0, 1.0), {"veil": 1.0}, 1.0)
    clean_ds = NoisePairDataset(pool, 48, 0, (1.0, 1.0), {"veil": 1.0}, 0.0)
    noisy, target = noisy_ds.pair(3)
    same, target2 = clean_ds.pair(3)
    assert np.array_equal(target, target2)  # the noise is drawn after the degradation, from the same generator
    assert np.abs(same - target).max() <= 0.5 / 255 + 1e-6 and np.abs(noisy - target).max() > 4 / 255
    with pytest.raises(ValueError, match="noise_fraction"):
        NoisePairDataset(pool, 48, 0, (1.0, 1.0), {}, 1.5)
    cfg = DenoiserConfig(data=[str(tiny_data)], out=str(tmp_path / "dn"), steps=3, batch_size=2, crop=48, max_side=128,
                         val_images=1, val_every=3, save_every=3, workers=0, warmup=1, threads=1)
    result = DenoiserTrainer(cfg, log=lambda m: None).run(progress=False)
    model, meta = load_model(result["weights"])
    assert meta["preset"] == "dn-s" and meta["steps"] == 3 and type(model).__name__ == "Denoiser"
    assert {"psnr", "input_psnr"} <= set(json.loads((tmp_path / "dn" / "last" / "state.json").read_text())["history"][0])


def test_a_denoiser_judged_through_the_restorer_leaves_the_restorer_as_it_was(tiny_data: Path, tmp_path: Path) -> None:
    """restorer + w_restored: the step charges what the frozen restorer makes of the denoised crop, validation reports
    it, and the restorer's weights never move; a denoiser or a missing restorer is refused."""
    from ftrt.models.pretrained import load_model
    from ftrt.training.config import DenoiserConfig
    from ftrt.training.denoise import DenoiserTrainer, frozen_restorer

    judge = frozen_restorer("res-s", channels_last=False)
    assert not any(p.requires_grad for p in judge.parameters()) and not judge.training
    dn_cfg = DenoiserConfig(data=[str(tiny_data)], out=str(tmp_path / "dn"), steps=1, batch_size=2, crop=48,
                            max_side=128, val_images=1, val_every=1, save_every=1, workers=0, warmup=1, threads=1)
    dn_weights = DenoiserTrainer(dn_cfg, log=lambda m: None).run(progress=False)["weights"]
    with pytest.raises(ValueError, match="not a restorer"):
        frozen_restorer(dn_weights, channels_last=False)
    with pytest.raises(ValueError, match="needs a restorer"):
        DenoiserTrainer(DenoiserConfig(**{**dn_cfg.__dict__, "w_restored": 1.0}), log=lambda m: None)

    cfg = DenoiserConfig(**{**dn_cfg.__dict__, "out": str(tmp_path / "judged"), "steps": 2, "val_every": 2,
                            "save_every": 2, "restorer": "res-s", "w_restored": 1.0})
    trainer = DenoiserTrainer(cfg, log=lambda m: None)
    before = {k: v.clone() for k, v in trainer.judge.state_dict().items()}
    trainer.run(progress=False)
    after = trainer.judge.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    logged = [json.loads(line) for line in (tmp_path / "judged" / "log.jsonl").read_text().splitlines()]
    assert all(row["restored"] > 0 for row in logged if "restored" in row) and any("restored" in r for r in logged)
    val = json.loads((tmp_path / "judged" / "last" / "state.json").read_text())["history"][-1]
    assert val["restored_psnr"] > 20 and val["restored_input_psnr"] > 20
    model, meta = load_model(str(tmp_path / "judged" / "final.safetensors"))
    assert meta["preset"] == "dn-s" and type(model).__name__ == "Denoiser"
