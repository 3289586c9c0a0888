from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from click.testing import CliRunner

from ftrt.cli import main
from ftrt.export import export_onnx
from ftrt.onnx.metadata import get_metadata
from ftrt.export.parity import ParityError, parity_check
from ftrt.models import build_model


@pytest.fixture(scope="module")
def random_res_s() -> torch.nn.Module:
    torch.manual_seed(0)
    m = build_model("res-s").eval()
    for p in m.out_proj.parameters():  # non-zero head: an identity model would hide export bugs
        torch.nn.init.normal_(p, std=0.05)
    return m


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, random_res_s: torch.nn.Module) -> Path:
    out = tmp_path_factory.mktemp("onnx") / "res-s.onnx"
    export_onnx(random_res_s, out, preset="res-s", card_id="test-card", opset=17)
    return out


def test_export_passes_checker_and_keeps_dynamic_dims(exported: Path) -> None:
    proto = onnx.load(str(exported))
    onnx.checker.check_model(proto, full_check=True)
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims[1] == 3 and all(isinstance(d, str) and d for d in (dims[0], dims[2], dims[3]))
    assert proto.opset_import[0].version == 17


@pytest.mark.parametrize("shape", [(1, 3, 32, 32), (1, 3, 61, 203), (3, 3, 129, 77), (1, 3, 300, 257)])
def test_ort_matches_torch_on_odd_sizes(exported: Path, random_res_s: torch.nn.Module, shape: tuple) -> None:
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = random_res_s(x).numpy()
    s = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    got = s.run(None, {"image": x.numpy()})[0]
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() < 1e-4


def test_metadata_round_trip(exported: Path) -> None:
    meta = get_metadata(onnx.load(str(exported)))
    assert meta["preset"] == "res-s" and meta["card_id"] == "test-card"
    assert meta["pad_multiple"] == "8" and meta["channel_order"] == "RGB" and meta["value_range"] == "0,1"
    assert meta["opset"] == "17" and meta["precision"] == "fp32"
    # The torch-free runtime reads the same keys through ONNX Runtime.
    s = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    assert s.get_modelmeta().custom_metadata_map["preset"] == "res-s"


def test_parity_check_fails_clearly(exported: Path, random_res_s: torch.nn.Module) -> None:
    other = build_model("res-s").eval()  # identity model: differs from the exported one
    with pytest.raises(ParityError, match="max abs error .* exceeds 0.0001"):
        parity_check(other, exported.read_bytes(), ((1, 3, 40, 40),), 1e-4)


def test_dynamo_exporter_opset18(tmp_path: Path, random_res_s: torch.nn.Module) -> None:
    res = export_onnx(random_res_s, tmp_path / "m18.onnx", preset="res-s", opset=18, simplify=False)
    assert max(r["max_abs_err"] for r in res.parity) < 1e-4
    assert not (tmp_path / "m18.onnx.data").exists(), "weights must be inside the file"
    assert onnx.load(str(tmp_path / "m18.onnx")).opset_import[0].version >= 18


def test_fp16_export_keeps_fp32_io(tmp_path: Path, random_res_s: torch.nn.Module) -> None:
    res = export_onnx(random_res_s, tmp_path / "h.onnx", preset="res-s", opset=17, fp16=True)
    proto = onnx.load(str(tmp_path / "h.onnx"))
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert proto.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in proto.graph.initializer)
    assert res.fp16_psnr_db is not None and res.fp16_psnr_db > 45
    assert get_metadata(proto)["precision"] == "fp16-mixed"


def test_export_cli_and_info(tmp_path: Path) -> None:
    from ftrt.training.checkpoint import save_weights

    m = build_model("res-s")
    w = tmp_path / "w.safetensors"
    save_weights(w, m.state_dict(), {"preset": "res-s", "kwargs": {"width": 16, "stages": 3}})
    out = tmp_path / "m.onnx"
    r = CliRunner().invoke(main, ["export", "--model", str(w), "-o", str(out), "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert len(rep["parity"]) == 3 and all(p["max_abs_err"] < 1e-4 for p in rep["parity"])
    r = CliRunner().invoke(main, ["info", str(out), "--json"])
    info = json.loads(r.stdout)
    assert info["inputs"][0]["shape"][1] == 3 and isinstance(info["inputs"][0]["shape"][2], str)
    assert info["parameters"] > 1_000_000 and info["metadata"]["preset"] == "res-s"
    r = CliRunner().invoke(main, ["info", str(w)])
    assert r.exit_code == 0 and "res-s" in r.output
    bad = CliRunner().invoke(main, ["export", "--model", "nonexistent", "-o", str(tmp_path / "x.onnx")])
    assert bad.exit_code == 2 and "no weights" in bad.output


def test_mage_net_exports_both_stages_as_one_graph(tmp_path: Path) -> None:
    """MAGE-Net (two stages, the segmenter, the half-height split) as one any-size ONNX, checked against
    PyTorch by the export's own parity sizes and again here on a size it did not try."""

    torch.manual_seed(0)
    m = build_model("mage-s").eval()
    for p in [*m.out2.parameters(), *m.sam.to_img.parameters()]:
        torch.nn.init.normal_(p, std=0.05)
    out = tmp_path / "mage.onnx"
    export_onnx(m, out, preset="mage-s", opset=17)
    x = torch.rand(1, 3, 83, 140)
    with torch.no_grad():
        ref = m(x).numpy()
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    assert len(sess.get_outputs()) == 1 and got.shape == ref.shape
    assert np.abs(got - ref).max() < 1e-4
