"""The two-scale restorer: identity at init, a colour map that comes from the whole FOV, any size, and one
any-size ONNX graph that matches PyTorch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from ftrt.export import export_onnx
from ftrt.models import build_model
from ftrt.models.twoscale import TwoScaleRestorer


def _nonzero(m: TwoScaleRestorer) -> TwoScaleRestorer:
    torch.manual_seed(0)
    for p in [*m.lr_head.parameters(), *m.hr_out.parameters()]:
        torch.nn.init.normal_(p, std=0.05)
    return m


@pytest.mark.parametrize("hw", [(32, 32), (45, 77), (130, 97)])
def test_any_size_and_identity_at_init(hw: tuple[int, int]) -> None:
    m = build_model("twoscale").eval()
    x = torch.rand(2, 3, *hw)
    with torch.no_grad():
        assert torch.equal(m(x), x)  # zero heads: training starts from "no harm"
        y = _nonzero(m)(x)
    assert y.shape == x.shape and torch.isfinite(y).all() and (y - x).abs().max() > 0


def test_colour_map_is_smooth_and_sees_the_whole_photograph() -> None:
    """A change in one corner moves the colour map far away (the global term), but the full-resolution
    detail branch only within its receptive field."""
    m = _nonzero(build_model("twoscale")).eval()
    x = torch.rand(1, 3, 128, 128) * 0.5 + 0.25
    x2 = x.clone()
    x2[..., :32, :32] = 1.0
    with torch.no_grad():
        c1, c2 = m.colour_map(m.pad(x)), m.colour_map(m.pad(x2))
        d1 = m.detail(x, x)
        d2 = m.detail(x2, x)
    assert (c1[..., 100:, 100:] - c2[..., 100:, 100:]).abs().max() > 1e-4
    # Receptive field of the detail branch: 1 + 2 x (1 + 2 + 4) + 1 = 16 px each side.
    assert torch.equal(d1[..., 60:, 60:], d2[..., 60:, 60:])
    # Smooth: bilinear from 1/8 resolution, so neighbouring pixels differ little.
    assert (c1[..., 1:, :] - c1[..., :-1, :]).abs().max() < 0.05


def test_exports_as_one_any_size_graph(tmp_path: Path) -> None:
    m = _nonzero(build_model("twoscale")).eval()
    out = tmp_path / "twoscale.onnx"
    res = export_onnx(m, out, preset="twoscale", work_side=768)
    assert max(r["max_abs_err"] for r in res.parity) < 1e-4
    x = torch.rand(1, 3, 150, 211)
    with torch.no_grad():
        ref = m(x).numpy()
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    assert got.shape == ref.shape and np.abs(got - ref).max() < 1e-4
