"""The sensor-noise remover (dn-s) and its gated chain in front of res-s (dn-res-s)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

from ftrt.export import export_onnx
from ftrt.models import build_model
from ftrt.models.denoise import lit_fov, noise_contrast_ratio
from ftrt.models.pretrained import load_model
from ftrt.training.checkpoint import chain_denoiser, save_weights


def _fundus(h: int = 96, w: int = 112, noise: float = 0.0, seed: int = 0) -> torch.Tensor:
    """A disc of smooth detail (vessel-scale) under a veil, optionally with sensor noise."""
    g = torch.Generator().manual_seed(seed)
    detail = F.avg_pool2d(torch.rand(1, 1, h, w, generator=g), 5, 1, 2, count_include_pad=False) - 0.5
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    disc = (((yy - h / 2) / (h / 2)) ** 2 + ((xx - w / 2) / (w / 2)) ** 2 < 0.9).float()
    img = (0.55 + 0.06 * detail).expand(1, 3, h, w) + noise * torch.randn(1, 3, h, w, generator=g)
    return img.clamp(0, 1) * disc


def _randomised(name: str, **kwargs: object) -> torch.nn.Module:
    torch.manual_seed(0)
    m = build_model(name, **kwargs).eval()
    for mod in m.modules():  # non-zero heads: an identity model would hide export and gate bugs
        if hasattr(mod, "tail") and isinstance(mod.tail, torch.nn.Conv2d):
            torch.nn.init.normal_(mod.tail.weight, std=0.02)
        if hasattr(mod, "out_proj"):
            torch.nn.init.normal_(mod.out_proj.weight, std=0.05)
    return m


def test_untrained_denoiser_is_the_identity_at_any_size() -> None:
    m = build_model("dn-s").eval()
    for shape in ((1, 3, 33, 47), (2, 3, 64, 64)):
        x = torch.rand(*shape)
        with torch.no_grad():
            assert torch.equal(m(x), x)


def test_gate_is_shut_on_a_noise_free_photograph_and_open_on_a_noisy_one() -> None:
    """Without noise the chain is exactly the restorer; with noise it restores the denoised photograph."""
    chain = _randomised("dn-res-s")
    clean, noisy = _fundus(), _fundus(noise=0.03)
    fov = lit_fov(noisy)
    assert noise_contrast_ratio(clean, fov).item() < 0.9 < 1.2 < noise_contrast_ratio(noisy, fov).item()
    with torch.no_grad():
        assert torch.equal(chain(clean), chain.restorer(clean))
        assert torch.allclose(chain(noisy), chain.restorer(chain.denoiser(noisy)))
        assert not torch.allclose(chain(noisy), chain.restorer(noisy), atol=1e-4)


def test_chained_file_loads_exports_and_matches_torch(tmp_path: Path) -> None:
    """tools/chain_denoiser.py's function: two runs' files -> one dn-res-s file that loads as the chain and
    exports as one any-size graph that ONNX Runtime runs as PyTorch does, gate included."""
    dn, res = _randomised("dn-s"), _randomised("res-s", affine_head=True)
    save_weights(tmp_path / "dn.safetensors", dn.state_dict(), {"preset": "dn-s", "kwargs": {"width": 32, "layers": 8},
                                                              "steps": 7})
    save_weights(tmp_path / "res.safetensors", res.state_dict(),
                 {"preset": "res-s", "kwargs": {"width": 16, "stages": 3, "affine_head": True}, "work_side": 768,
                  "card_id": "res-s@test"})
    meta = chain_denoiser(tmp_path / "dn.safetensors", tmp_path / "res.safetensors", tmp_path / "chain.safetensors")
    assert meta["preset"] == "dn-res-s" and meta["work_side"] == 768 and meta["kwargs"]["gate"] == [0.9, 1.2]
    chain, _ = load_model(str(tmp_path / "chain.safetensors"))
    x = _fundus(83, 140, noise=0.03)
    with torch.no_grad():
        # The chain pads the photograph once for both networks, so the denoiser sees the reflected pad where on
        # its own it pads less: the two agree away from the bottom and right edges, and exactly at a padded size.
        assert torch.allclose(chain(x)[..., :60, :110], res(dn(x))[..., :60, :110], atol=1e-6)
        x88 = _fundus(88, 136, noise=0.03)
        assert torch.allclose(chain(x88), res(dn(x88)), atol=1e-6)
    out = tmp_path / "chain.onnx"
    export_onnx(chain, out, preset="dn-res-s", opset=17)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for img in (x, _fundus(61, 77)):  # gate open, gate shut
        with torch.no_grad():
            ref = chain(img).numpy()
        got = sess.run(None, {sess.get_inputs()[0].name: img.numpy()})[0]
        assert got.shape == ref.shape and np.abs(got - ref).max() < 1e-4
    with pytest.raises(ValueError, match="dn-s or dn-m and a res-s"):
        chain_denoiser(tmp_path / "res.safetensors", tmp_path / "dn.safetensors", tmp_path / "bad.safetensors")


def test_chain_graph_gets_the_restorers_cpu_layout(tmp_path: Path) -> None:
    """The chain pads its graph input once, so ftrt's CPU layout pass finds the restorer's heights even and runs
    its grouped 5x5 convolutions on row pairs, as in res-s's own graph (a pure graph rewrite: the block size is
    given, not read from this CPU)."""
    import onnx

    from ftrt.onnx.cpu_layout import run_passes

    notes = {}
    for name in ("dn-res-s", "res-s"):
        path = tmp_path / f"{name}.onnx"
        export_onnx(_randomised(name, **({} if name == "dn-res-s" else {"affine_head": True})), path, preset=name,
                    opset=17)
        notes[name] = run_passes(onnx.load(str(path)), 16)
    rows = {k: re.search(r"(\d+) grouped 5x5 convs? on row pairs", v) for k, v in notes.items()}
    assert rows["res-s"] and rows["dn-res-s"], notes
    assert rows["dn-res-s"].group(1) == rows["res-s"].group(1), notes


def test_dn_m_starts_as_the_dn_s_it_is_initialised_from(tmp_path: Path) -> None:
    """dn-s weights load into dn-m (the context branch keeps its zero output) and compute what they did; anything
    else is refused."""
    from ftrt.models.registry import preset_kwargs
    from ftrt.training.denoise import load_denoiser_init

    dn = _randomised("dn-s")
    save_weights(tmp_path / "dn.safetensors", dn.state_dict(), {"preset": "dn-s", "kwargs": {"width": 32, "layers": 8}})
    m = build_model("dn-m").eval()
    load_denoiser_init(m, str(tmp_path / "dn.safetensors"), preset_kwargs("dn-m"))
    x = _fundus(64, 96, noise=0.03)
    with torch.no_grad():
        assert torch.equal(m(x), dn(x))
    m.context[-2].weight.data.normal_(std=0.01)  # type: ignore[index]
    with torch.no_grad():
        assert not torch.allclose(m(x), dn(x), atol=1e-5)
    save_weights(tmp_path / "wide.safetensors", build_model("dn-s", width=16).state_dict(),
                 {"preset": "dn-s", "kwargs": {"width": 16, "layers": 8}})
    with pytest.raises(ValueError, match="does not load"):
        load_denoiser_init(build_model("dn-m"), str(tmp_path / "wide.safetensors"), preset_kwargs("dn-m"))


def test_chain_converts_to_fp16_and_int8_with_its_gate_in_fp32(tmp_path: Path) -> None:
    """The gate's FOV sums run past FP16's 65504 on any photograph over 256 px: FP16 keeps the gate's scope in
    FP32 (the file loads, and a noisy photograph with a 90 k-pixel FOV still opens the gate), and INT8's default
    keep list holds every convolution of the gate (its threshold must not move)."""
    import onnx

    from ftrt.onnx.fp16 import convert_fp16, scoped_nodes
    from ftrt.precision.int8 import default_keep

    chain = _randomised("dn-res-s")
    export_onnx(chain, tmp_path / "chain.onnx", preset="dn-res-s", opset=17)
    proto = onnx.load(str(tmp_path / "chain.onnx"))
    gate = set(scoped_nodes(proto))
    gate_convs = {n.name for n in proto.graph.node if n.op_type == "Conv" and n.name in gate}
    assert len(gate_convs) == 3 and gate_convs <= set(default_keep(proto))
    onnx.save(convert_fp16(proto), str(tmp_path / "chain16.onnx"))
    x = _fundus(340, 340, noise=0.03)
    assert chain.noise_gate(x).item() == 1.0
    sess = ort.InferenceSession(str(tmp_path / "chain16.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        ref, shut = chain(x).numpy(), chain.restorer(x).numpy()
    # FP16 moves this random-weight restorer's output a little; a broken gate would move it to the shut chain's.
    assert np.isfinite(got).all() and np.abs(got - ref).mean() < np.abs(shut - ref).mean() / 4


def test_refined_chain_file_runs_the_refiner_behind_the_restorer(tmp_path: Path) -> None:
    """chain_denoiser with a refiner: a dn-res-rf-s file whose output is the rf-m run's on the dn-res-s output, and
    whose one graph ONNX Runtime runs as PyTorch does; a refiner must be an rf-m, and an rf-m is no denoiser."""
    dn, res, rf = _randomised("dn-m"), _randomised("res-s", affine_head=True), _randomised("rf-m")
    kw = {"width": 32, "layers": 8, "context": 48}
    save_weights(tmp_path / "dn.safetensors", dn.state_dict(), {"preset": "dn-m", "kwargs": kw})
    save_weights(tmp_path / "res.safetensors", res.state_dict(),
                 {"preset": "res-s", "kwargs": {"width": 16, "stages": 3, "affine_head": True}, "work_side": 768})
    save_weights(tmp_path / "rf.safetensors", rf.state_dict(), {"preset": "rf-m", "kwargs": kw, "steps": 5})
    meta = chain_denoiser(tmp_path / "dn.safetensors", tmp_path / "res.safetensors", tmp_path / "chain.safetensors",
                          refiner=tmp_path / "rf.safetensors")
    assert meta["preset"] == "dn-res-rf-s" and meta["parts"]["refiner"]["steps"] == 5
    chain, _ = load_model(str(tmp_path / "chain.safetensors"))
    x = _fundus(88, 136)  # a padded size, gate shut: the chain is rf(res(x))
    with torch.no_grad():
        assert torch.allclose(chain(x), rf(res(x)), atol=1e-6)
        assert not torch.allclose(chain(x), res(x), atol=1e-4)
    export_onnx(chain, tmp_path / "chain.onnx", preset="dn-res-rf-s", opset=17)
    sess = ort.InferenceSession(str(tmp_path / "chain.onnx"), providers=["CPUExecutionProvider"])
    for img in (_fundus(83, 140, noise=0.03), _fundus(61, 77)):
        with torch.no_grad():
            ref = chain(img).numpy()
        got = sess.run(None, {sess.get_inputs()[0].name: img.numpy()})[0]
        assert got.shape == ref.shape and np.abs(got - ref).max() < 1e-4
    with pytest.raises(ValueError, match="need an rf-m"):
        chain_denoiser(tmp_path / "dn.safetensors", tmp_path / "res.safetensors", tmp_path / "bad.safetensors",
                       refiner=tmp_path / "dn.safetensors")
    with pytest.raises(ValueError, match="dn-s or dn-m and a res-s"):
        chain_denoiser(tmp_path / "rf.safetensors", tmp_path / "res.safetensors", tmp_path / "bad.safetensors")
