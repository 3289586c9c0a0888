"""Latent diffusion: the sampler's maths, the adaptors, training phases, the exported pipeline run torch-free
(same result as PyTorch, deterministic per seed), the readability screening, and bad pipeline directories."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from ftrt.cli import main
from ftrt.export.pipeline_export import export_pipeline
from ftrt.io import write_image
from ftrt.models import build_model
from ftrt.models.ldm import LatentDiffusionRestorer
from ftrt.runtime.diffusion import DiffusionBackend, PipelineError, read_pipeline
from ftrt.runtime.sampler import SamplerSettings, add_noise, alphas_cumprod, ddim_step, timesteps
from ftrt.training.config import LdmConfig, VaeConfig
from ftrt.training.ldm import LdmTrainer, VaeTrainer


def test_schedule_and_timesteps() -> None:
    ac = alphas_cumprod()
    assert ac.shape == (1000,) and np.all(np.diff(ac) < 0) and ac[0] < 1 and ac[-1] < 1e-3
    assert timesteps(4) == [999, 666, 333, 0]
    assert timesteps(3, strength=0.4) == [400, 200, 0]
    assert timesteps(1) == [999]
    for bad in ({"steps": 0}, {"steps": 201}, {"strength": 0.0}, {"strength": 1.5}):
        with pytest.raises(ValueError):
            SamplerSettings(**bad)  # type: ignore[arg-type]


def test_ddim_with_the_true_v_lands_on_the_clean_latent() -> None:
    """v-prediction algebra: given the exact v, one step to t=-1 returns z0, and a step to any t' lands on
    z0 noised with the same epsilon."""
    rng = np.random.default_rng(0)
    ac = alphas_cumprod()
    z0, eps = rng.standard_normal((2, 1, 4, 5, 6)).astype(np.float32)
    for t in (999, 500, 3):
        zt = add_noise(z0, eps, t, ac)
        v = (np.sqrt(ac[t]) * eps - np.sqrt(1 - ac[t]) * z0).astype(np.float32)
        assert np.allclose(ddim_step(zt, v, t, -1, ac), z0, atol=1e-4)
        assert np.allclose(ddim_step(zt, v, t, t // 2, ac), add_noise(z0, eps, t // 2, ac), atol=1e-4)


def _random_ldm() -> LatentDiffusionRestorer:
    torch.manual_seed(0)
    m: LatentDiffusionRestorer = build_model("ldm").eval()  # type: ignore[assignment]
    for p in m.denoiser.out.parameters():
        torch.nn.init.normal_(p, std=0.05)
    m.latent_scale.fill_(0.8)
    return m


def test_adaptors_start_as_identity_and_are_the_only_trainable_parts_in_adaptation() -> None:
    m = _random_ldm()
    x = torch.rand(1, 3, 40, 52)
    with torch.no_grad():
        before = m.vae(x)
        for a in m.adaptors():
            a.enabled = False
        off = m.vae(x)
        for a in m.adaptors():
            a.enabled = True
    assert torch.equal(before, off)
    m.set_adaptation(True)
    trainable = {n for n, p in m.named_parameters() if p.requires_grad}
    assert trainable and all(".adaptor." in n for n in trainable)
    assert sum(p.numel() for p in m.parameters() if p.requires_grad) < 0.01 * sum(p.numel() for p in m.parameters())


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("ldm") / "pipe"
    export_pipeline(_random_ldm(), d, meta={"preset": "ldm", "card_id": "ldm-test"},
                    refine_from=Path(__file__).resolve().parents[2] / "ftrt" / "weights" / "res-s.onnx")
    return d


def test_pipeline_runs_torch_free_like_pytorch_and_is_deterministic(pipeline_dir: Path) -> None:
    desc = read_pipeline(pipeline_dir)
    assert set(desc["parts"]) == {"features", "vae_encoder", "denoiser", "vae_decoder"}
    assert all(max(r["max_abs_err"] for r in p["parity"]) < 1e-3 for p in desc["parts"].values())
    x = np.random.default_rng(1).random((1, 3, 61, 90)).astype(np.float32)
    with DiffusionBackend(pipeline_dir, steps=3, seed=5) as be:
        a = be.run(x)
        b = be.run(x)
        timing = dict(be.last_timing)
    with torch.no_grad():
        from ftrt.models.ldm import TorchParts
        from ftrt.runtime.sampler import restore_latent

        ref = restore_latent(TorchParts(_random_ldm()), x, SamplerSettings(steps=3, seed=5))
    assert a.shape == x.shape and np.array_equal(a, b)
    assert np.abs(a - ref).max() < 1e-3
    assert timing["steps"] == 3 and {"features", "encode", "denoise", "decode"} <= set(timing)
    with DiffusionBackend(pipeline_dir, steps=3, seed=6) as be:
        assert np.abs(be.run(x) - a).max() > 1e-4  # another seed, another sample
    with DiffusionBackend(pipeline_dir, steps=2, refine=True) as be:
        assert be.run(x).shape == x.shape and "restorer" in be.last_timing


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_bad_pipeline_directories_are_refused_before_inference(pipeline_dir: Path, tmp_path: Path) -> None:
    gone = _copy(pipeline_dir, tmp_path / "gone")
    (gone / "denoiser.onnx").unlink()
    with pytest.raises(PipelineError, match="denoiser.*missing"):
        DiffusionBackend(gone)
    swapped = _copy(pipeline_dir, tmp_path / "swapped")
    shutil.copyfile(swapped / "vae_encoder.onnx", swapped / "vae_decoder.onnx")
    with pytest.raises(PipelineError, match="vae_decoder.*hash"):
        DiffusionBackend(swapped)
    desc = json.loads((pipeline_dir / "pipeline.json").read_text())
    for name, edit, msg in [
        ("channels", lambda d: d["latent"].update(channels=8), "latent_channels"),
        ("scale", lambda d: d["latent"].update(scale=2.0), "latent scale"),
        ("escape", lambda d: d["parts"]["features"].update(file="../features.onnx"), "not a file in the directory"),
        ("sched", lambda d: d["scheduler"].update(prediction="eps"), "scheduler"),
        ("noparts", lambda d: d["parts"].pop("features"), "parts missing"),
        ("steps", lambda d: d.update(steps=10**6), "steps must be"),
    ]:
        bad = _copy(pipeline_dir, tmp_path / name)
        d = json.loads(json.dumps(desc))
        edit(d)
        (bad / "pipeline.json").write_text(json.dumps(d))
        with pytest.raises(PipelineError, match=msg):
            DiffusionBackend(bad).open()
    strength = _copy(pipeline_dir, tmp_path / "strength")
    (strength / "pipeline.json").write_text(json.dumps({**desc, "refine_strength": [1]}))
    with pytest.raises(PipelineError, match="float"):
        DiffusionBackend(strength, refine=True)
    garbage = _copy(pipeline_dir, tmp_path / "garbage")
    (garbage / "pipeline.json").write_text("{not json")
    with pytest.raises(PipelineError, match="not JSON"):
        DiffusionBackend(garbage)


def test_restore_cli_screens_runs_and_refuses(pipeline_dir: Path, tmp_path: Path, retina: np.ndarray) -> None:
    src = tmp_path / "in"
    write_image(src / "good.png", cv2.resize(retina, (96, 96)))
    # A veiled, blurred copy the gate does not read: the expensive path runs for it only.
    hazy = cv2.GaussianBlur(cv2.resize(retina, (96, 96)), (0, 0), 4) * 0.3 + 0.6
    write_image(src / "hazy.png", hazy * (cv2.resize(retina, (96, 96)).max(axis=2, keepdims=True) > 0.05))
    r = CliRunner().invoke(main, ["restore", str(src), "-o", str(tmp_path / "out"), "--model", str(pipeline_dir),
                                  "--steps", "2", "--seed", "1", "--gate", "--json"])
    assert r.exit_code == 0, r.output
    recs = {Path(j["input"]).name: j for j in map(json.loads, r.output.strip().splitlines())}
    for rec in recs.values():
        assert rec["status"] == "ok" and Path(rec["output"]).is_file()
        ran = rec["diffusion"]["ran"]
        assert ran == (not rec["readability_before"]["readable"])
        if ran:
            assert rec["diffusion"]["steps"] == 2 and rec["diffusion"]["seed"] == 1
    assert not recs["good.png"]["diffusion"]["ran"] and recs["hazy.png"]["diffusion"]["ran"]
    usage = CliRunner().invoke(main, ["restore", str(src), "-o", str(tmp_path / "o2"), "--model", str(pipeline_dir),
                                      "--steps", "0"])
    assert usage.exit_code == 2
    not_dir = CliRunner().invoke(main, ["restore", str(src), "-o", str(tmp_path / "o3"), "--steps", "4"])
    assert not_dir.exit_code == 2 and "pipeline" in not_dir.output


def test_training_phases_then_export(tmp_path: Path, retina: np.ndarray) -> None:
    data = tmp_path / "data"
    for i in range(5):
        write_image(data / f"p{i}.png", np.roll(cv2.resize(retina, (96, 96)), 4 * i, axis=1))
    # workers 0: a DataLoader worker forked here, then OpenVINO started by a later test, made the next fork
    # of this pytest process (tests/runtime's subprocess tests) die of SIGSEGV (reproduced; CI stopped on it).
    common = {"data": [str(data)], "steps": 2, "batch_size": 2, "crop": 48, "val_images": 1, "val_every": 2,
              "save_every": 2, "max_side": 96, "log_every": 1, "workers": 0}
    vae = VaeTrainer(VaeConfig(out=str(tmp_path / "vae"), **common), log=lambda m: None)
    vae.run(progress=False)
    rec = LdmTrainer(LdmConfig(out=str(tmp_path / "rec"), vae=str(tmp_path / "vae"), val_side=48, **common),
                     log=lambda m: None)
    assert float(rec.model.latent_scale) != 1.0  # measured on the data
    rec.run(progress=False)
    adapt = LdmTrainer(LdmConfig(out=str(tmp_path / "ad"), phase="adapt", init=str(tmp_path / "rec"), val_side=48,
                                 **common), log=lambda m: None)
    frozen = {n: p.detach().clone() for n, p in adapt.model.named_parameters() if ".adaptor." not in n}
    result = adapt.run(progress=False)
    assert result["trainable"] < 20000 and result["phase"] == "adapt"
    for n, p in adapt.model.named_parameters():
        if n in frozen:
            assert torch.equal(p, frozen[n]), n
    r = CliRunner().invoke(main, ["export", "--model", str(tmp_path / "ad"), "-o", str(tmp_path / "pipe"), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["training"]["phase"] == "adapt"
    with pytest.raises(ValueError, match="--init"):
        LdmTrainer(LdmConfig(out=str(tmp_path / "x"), phase="adapt", **common), log=lambda m: None)


def test_fp16_per_part_and_profile_per_step(pipeline_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "half"
    r = CliRunner().invoke(main, ["convert", str(pipeline_dir), "--fp16", "-o", str(out), "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.output.strip().splitlines()[-1])
    assert set(report["part_alone_psnr_db"]) == {"features", "vae_encoder", "denoiser", "vae_decoder"}
    desc = read_pipeline(out)  # hashes rewritten for the converted parts
    assert set(desc["precision"].values()) <= {"fp16-mixed", "fp32"}
    with DiffusionBackend(out, steps=2) as be:
        assert np.isfinite(be.run(np.full((1, 3, 48, 48), 0.5, np.float32))).all()
    p = CliRunner().invoke(main, ["profile", str(pipeline_dir), "--backend", "ort", "--shapes", "64x64", "--warmup",
                                  "0", "--iters", "2", "--baseline", "ort", "--json"])
    assert p.exit_code == 0, p.output
    cell = json.loads(p.output)["results"][0]
    assert cell["error"] is None and {"denoise", "denoise_per_step", "decode"} <= set(cell["device_ms"])


def test_engine_plan_for_a_pipeline_without_a_gpu(pipeline_dir: Path, tmp_path: Path) -> None:
    """The TensorRT build of a pipeline, planned and written with a stand-in builder (TensorRT cannot run
    here): image parts at the image profiles, latent parts at 1/4, every input's shape derived from the
    first input's, and a description whose engine hashes the runtime checks."""
    from ftrt.engine.build import BuildOptions
    from ftrt.engine.pipeline import build_pipeline_engines
    from ftrt.engine.profiles import EngineProfile, input_shape, parse_profile, scaled_profile

    p = parse_profile("97x131:512x512:1024x1024")
    assert scaled_profile(p, 4) == EngineProfile((1, 25, 33), (1, 128, 128), (1, 256, 256))
    assert input_shape([-1, 3, -1, -1], 2, 64, 80) == (2, 3, 64, 80)
    assert input_shape([-1], 2, 64, 80) == (2,)
    assert input_shape([-1, 384, 7, 7], 2, 64, 80) == (2, 384, 7, 7)
    with pytest.raises(ValueError):
        parse_profile("16x16:32x32:64x64")  # image profiles keep their 32 px floor
    built: dict[str, list[EngineProfile]] = {}

    def fake_build(onnx_path: Path, out: Path, opts: BuildOptions, log: object = None) -> dict:
        built[Path(onnx_path).stem] = list(opts.profiles)
        out.write_bytes(b"plan of " + Path(onnx_path).name.encode())
        return {}

    out = tmp_path / "engines"
    desc = build_pipeline_engines(pipeline_dir, out, BuildOptions(profiles=[p]), build=fake_build, log=lambda m: None)
    assert built["vae_encoder"] == built["features"] == built["restorer"] == [p]
    assert built["denoiser"] == built["vae_decoder"] == [scaled_profile(p, 4)]
    assert desc["parts"]["denoiser"]["file"] == "denoiser.engine" and desc["restorer"]["file"] == "restorer.engine"
    checked = read_pipeline(out)
    assert checked["paths"]["vae_decoder"].suffix == ".engine"
    from ftrt.runtime.backends import BackendUnavailable

    from ftrt.engine.sidecar import EngineMismatch

    with pytest.raises((BackendUnavailable, EngineMismatch)):
        DiffusionBackend(out).open()  # no TensorRT (or no sidecar) here: one clear error, nothing run


def test_frozen_readability_features_stay_in_eval_mode_while_training() -> None:
    m = _random_ldm().train()
    assert m.denoiser.training and not m.features.training
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        a = m.features(x)
        b = m.features(x[:1])
    assert torch.allclose(a[:1], b, atol=1e-5)  # no batch statistics: a photograph's features do not depend on its batch
