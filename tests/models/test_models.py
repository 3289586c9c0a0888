from __future__ import annotations

import pytest
import torch

from ftrt.models import build_model, count_parameters, list_models
from ftrt.models.blocks import LayerNorm2d
from ftrt.training.losses import gan_discriminator_loss, gan_generator_loss


@pytest.mark.parametrize(
    "name, low, high",
    [("res-l", 12.0e6, 13.0e6), ("res-m", 3.0e6, 4.0e6), ("res-s", 1.0e6, 1.4e6), ("syn", 1.0e6, 1.4e6),
     ("mage-s", 0.4e6, 0.5e6), ("mage", 1.5e6, 1.7e6), ("twoscale", 0.15e6, 0.2e6), ("light", 0.25e6, 0.29e6)],
)
def test_preset_parameter_counts(name: str, low: float, high: float) -> None:
    assert low <= count_parameters(build_model(name)) <= high


def test_unknown_preset_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown model 'res-xl'.*res-s"):
        build_model("res-xl")
    assert {"res-s", "res-m", "res-l", "syn", "patch-d"} <= set(list_models())


@pytest.mark.parametrize("hw", [(32, 32), (33, 47), (61, 100), (97, 65)])
def test_odd_sizes_come_back_same_size(hw: tuple[int, int]) -> None:
    torch.manual_seed(0)
    m = build_model("res-s").eval()
    for p in m.out_proj.parameters():  # a non-zero head, so padding errors would show in the output
        torch.nn.init.normal_(p, std=0.05)
    x = torch.rand(2, 3, *hw)
    with torch.no_grad():
        y = m(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()
    assert (y - x).abs().max() > 0


def test_res_l_odd_size() -> None:
    m = build_model("res-l").eval()
    with torch.no_grad():
        y = m(torch.rand(1, 3, 37, 53))
    assert y.shape == (1, 3, 37, 53)


def test_untrained_generator_is_identity() -> None:
    m = build_model("res-s").eval()
    x = torch.rand(1, 3, 40, 40)
    with torch.no_grad():
        assert torch.equal(m(x), x)


def test_layernorm2d_export_form_matches_eager() -> None:
    ln = LayerNorm2d(16)
    torch.nn.init.normal_(ln.weight)
    torch.nn.init.normal_(ln.bias)
    x = torch.randn(2, 16, 9, 7) * 3 + 1
    eager = ln(x)
    ref = torch.nn.functional.layer_norm(x.permute(0, 2, 3, 1), (16,), ln.weight, ln.bias, ln.eps).permute(0, 3, 1, 2)
    assert torch.allclose(eager, ref, atol=1e-5)
    mu = x.mean(1, keepdim=True)
    var = ((x - mu) ** 2).mean(1, keepdim=True)
    manual = (x - mu) / torch.sqrt(var + ln.eps) * ln.weight[None, :, None, None] + ln.bias[None, :, None, None]
    assert torch.allclose(eager, manual, atol=1e-5)


def test_syn_generator_one_gan_step_changes_output() -> None:
    torch.manual_seed(0)
    g, d = build_model("syn"), build_model("patch-d")
    opt_g = torch.optim.Adam(g.parameters(), lr=1e-3)
    opt_d = torch.optim.Adam(d.parameters(), lr=1e-3)
    good, real_cataract = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        before = g(good).clone()
    fake = g(good)
    logits = d(fake)
    assert logits.shape[0] == 2 and logits.shape[1] == 1
    loss_g = 0.01 * torch.nn.functional.smooth_l1_loss(fake, good) + 0.1 * gan_generator_loss(logits)
    opt_g.zero_grad()
    loss_g.backward()
    opt_g.step()
    loss_d = gan_discriminator_loss(d(real_cataract), d(fake.detach()))
    opt_d.zero_grad()
    loss_d.backward()
    opt_d.step()
    assert torch.isfinite(loss_g) and torch.isfinite(loss_d)
    with torch.no_grad():
        assert (g(good) - before).abs().max() > 0


def test_split_dense_conv_equals_grouped_conv_on_interleaved_concat() -> None:
    from ftrt.models.blocks import DenseConvBlock, interleave

    torch.manual_seed(0)
    block = DenseConvBlock(32)
    y, x = torch.randn(2, 32, 17, 19), torch.randn(2, 32, 17, 19)
    ref = block.conv2(interleave(y, x, block.groups))
    assert torch.allclose(block._dense_conv(y, x), ref, atol=1e-5)


def test_illumination_head_starts_as_identity_and_corrects_a_smooth_cast(tmp_path) -> None:
    """The optional affine head: identity at init, and able to express a smooth gain/offset field."""
    from ftrt.export import export_onnx

    m = build_model("res-s", affine_head=True).eval()
    x = torch.rand(1, 3, 45, 77)
    with torch.no_grad():
        assert torch.equal(m(x), x)
        m.affine.bias.copy_(torch.tensor([0.1, 0.0, -0.1, 0.0, 0.05, 0.0]))
        y = m(x)
    expected = x * torch.tensor([1.1, 1.0, 0.9]).view(1, 3, 1, 1) + torch.tensor([0.0, 0.05, 0.0]).view(1, 3, 1, 1)
    assert torch.allclose(y, expected, atol=1e-6)
    res = export_onnx(m, tmp_path / "affine.onnx", preset="res-s")
    assert max(r["max_abs_err"] for r in res.parity) < 1e-4


def test_global_colour_head_sees_the_fov_only_and_exports(tmp_path) -> None:
    """The global term: identity at init, one gain per photograph, blind to the black surround; FP32 and FP16 export."""
    from ftrt.export import export_onnx
    from ftrt.models.unet import fov_statistics

    with pytest.raises(ValueError, match="affine_head"):
        build_model("res-s", global_head=True)
    m = build_model("res-s", affine_head=True, global_head=True).eval()
    x = torch.rand(1, 3, 48, 64) * 0.5 + 0.3
    with torch.no_grad():
        assert torch.equal(m(x), x)
        m.global_head[2].bias.copy_(torch.tensor([0.2, 0.0, 0.0, 0.0, 0.0, -0.1]))
        y = m(x)
    expected = x * torch.tensor([1.2, 1.0, 1.0]).view(1, 3, 1, 1) - torch.tensor([0.0, 0.0, 0.1]).view(1, 3, 1, 1)
    assert torch.allclose(y, expected, atol=1e-6)
    # More black border around the same FOV pixels leaves the colour statistics unchanged.
    framed = torch.zeros(1, 3, 96, 128)
    framed[..., 24:72, 32:96] = x
    feat, feat_framed = torch.zeros(1, 4, 6, 8), torch.zeros(1, 4, 12, 16)
    assert torch.allclose(fov_statistics(x, feat, 8)[:, :6], fov_statistics(framed, feat_framed, 8)[:, :6], atol=1e-5)
    torch.manual_seed(0)
    for p in m.global_head.parameters():
        torch.nn.init.normal_(p, std=0.1)
    res = export_onnx(m, tmp_path / "global.onnx", preset="res-s")
    assert max(r["max_abs_err"] for r in res.parity) < 1e-4
    # INT8's default keep list leaves both colour heads in FP32, with the first and last convs.
    import onnx

    from ftrt.precision.int8 import default_keep

    proto = onnx.load(str(tmp_path / "global.onnx"))
    out_dims = [d.dim_value or d.dim_param for d in proto.graph.output[0].type.tensor_type.shape.dim]
    assert out_dims == ["batch", 3, "height", "width"]
    kept = default_keep(proto)
    assert len(kept) == 5 and sum("head" in k or "affine" in k for k in kept) == 3
    half = export_onnx(m, tmp_path / "global16.onnx", preset="res-s", fp16=True)
    assert half.fp16_psnr_db is not None and half.fp16_psnr_db > 45
