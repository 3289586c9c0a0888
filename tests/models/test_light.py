"""The light corrector: identity at init, an affine map per pixel that is smooth and comes from the whole
photograph, the same estimate whatever the input size, and one any-size ONNX graph that matches PyTorch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

from ftrt.export import export_onnx
from ftrt.models import build_model
from ftrt.models.light import LightCorrector


def _nonzero(m: LightCorrector) -> LightCorrector:
    torch.manual_seed(0)
    for p in m.head.parameters():
        torch.nn.init.normal_(p, std=0.05)
    return m


@pytest.mark.parametrize("hw", [(32, 32), (45, 77), (130, 97)])
def test_any_size_and_identity_at_init(hw: tuple[int, int]) -> None:
    m = build_model("light").eval()
    x = torch.rand(2, 3, *hw)
    with torch.no_grad():
        assert torch.equal(m(x), x)  # zero head: training starts from "no harm"
        y = _nonzero(m)(x)
    assert y.shape == x.shape and torch.isfinite(y).all() and (y - x).abs().max() > 0


def test_output_is_a_smooth_affine_map_of_the_input() -> None:
    """It can scale and shift each pixel, nothing else: swapping fine detail between two inputs with the
    same coarse content swaps it in the outputs, scaled by the same smooth gain."""
    m = _nonzero(build_model("light")).eval()
    torch.manual_seed(1)
    x = torch.rand(1, 3, 256, 256) * 0.5 + 0.25
    with torch.no_grad():
        coef = F.interpolate(m.coefficients(x), size=(256, 256), mode="bilinear", align_corners=False)
        y = m(x)
    torch.testing.assert_close(y, x * (1 + coef[:, :3]) + coef[:, 3:])
    # Smooth: bilinear from a 32 px grid (8 px cells here), so neighbouring pixels' coefficients differ little.
    assert (coef[..., 1:, :] - coef[..., :-1, :]).abs().max() < 0.02


def test_estimate_sees_the_whole_photograph() -> None:
    """A change in one corner moves the map in the far corner through the global term (FOV statistics)
    alone: without it, that corner is beyond every convolution's reach and does not move at all."""
    m = _nonzero(build_model("light")).eval()
    x = torch.rand(1, 3, 128, 128) * 0.5 + 0.25
    x2 = x.clone()
    x2[..., :16, :16] = 1.0

    def far_change() -> float:
        with torch.no_grad():
            c1, c2 = m.coefficients(x), m.coefficients(x2)
        return float((c1[..., 28:, 28:] - c2[..., 28:, 28:]).abs().max())

    assert far_change() > 0
    last = m.glob[-1]
    assert isinstance(last, torch.nn.Linear)
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.zeros_(last.bias)
    assert far_change() == 0


def test_same_estimate_at_any_resolution() -> None:
    """A smooth photograph at 256 and at 1024 px gives nearly the same map: training at 256 px carries over."""
    m = _nonzero(build_model("light")).eval()
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 64), torch.linspace(0, 1, 64), indexing="ij")
    base = torch.stack([0.6 * xx + 0.2, 0.3 * yy + 0.2, 0.1 + 0.0 * xx])[None]
    with torch.no_grad():
        small = m.coefficients(F.interpolate(base, size=(256, 256), mode="bilinear", align_corners=False))
        big = m.coefficients(F.interpolate(base, size=(1024, 1024), mode="bilinear", align_corners=False))
    assert (small - big).abs().max() < 0.01


def test_map_grid_is_coarser_than_a_vessel() -> None:
    m = build_model("light")
    assert m.coefficients(torch.rand(1, 3, 64, 64)).shape[-1] == 32
    with pytest.raises(ValueError, match="map_side"):
        LightCorrector(side=128, levels=3, map_side=8)


def test_exports_as_one_any_size_graph(tmp_path: Path) -> None:
    m = _nonzero(build_model("light")).eval()
    out = tmp_path / "light.onnx"
    res = export_onnx(m, out, preset="light", work_side=1024)
    assert max(r["max_abs_err"] for r in res.parity) < 1e-4
    x = torch.rand(1, 3, 150, 211)
    with torch.no_grad():
        ref = m(x).numpy()
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    assert got.shape == ref.shape and np.abs(got - ref).max() < 1e-4
