"""Precision in the ONNX: INT8 Q/DQ and mixed FP16 run in ONNX Runtime within the report thresholds."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from ftrt.precision import CalibrationDataError, calibrate_int8, convert_fp16_model, modelopt
from ftrt.precision.data import FundusCalibrationReader, ordered_images, parse_shape, select_images
from ftrt.precision.int8 import Ranges, collect_ranges
from ftrt.precision.report import check
from ftrt.engine.calib_cache import read_cache, retag, version_code, write_cache
from ftrt.cli import main
from ftrt.onnx.metadata import get_metadata
from ftrt.io import write_image


def test_selection_is_deterministic_and_rejects_non_fundus(tmp_path: Path, fundus_dir: Path) -> None:
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for p in fundus_dir.iterdir():
        (mixed / p.name).write_bytes(p.read_bytes())
    write_image(mixed / "noise.png", np.random.default_rng(0).uniform(0, 1, (64, 64, 3)).astype(np.float32))
    (mixed / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    a = ordered_images([str(mixed)])
    b = ordered_images([str(p) for p in sorted(mixed.iterdir(), reverse=True)])
    assert [p.name for p in a] == [p.name for p in b]
    sel = select_images([str(mixed)], num=10)
    assert {p.name for p in sel.used} == {f"fundus_{i}.png" for i in range(6)}
    assert any("noise.png" in r for r in sel.rejected) and any("broken.jpg" in r for r in sel.rejected)


def test_no_usable_calibration_images_is_a_clear_error(tmp_path: Path) -> None:
    d = tmp_path / "bad"
    d.mkdir()
    write_image(d / "flat.png", np.full((64, 64, 3), 0.5, np.float32))
    with pytest.raises(CalibrationDataError, match="no usable fundus photographs"):
        select_images([str(d)], num=4)


def test_parse_shape() -> None:
    assert parse_shape("512x384") == (512, 384)
    for bad in ("512", "16x16", "axb"):
        with pytest.raises(ValueError):
            parse_shape(bad)


def test_cache_round_trip(tmp_path: Path) -> None:
    r = Ranges("minmax", {"image": (0.0, 1.0), "/conv/Conv_output_0": (-3.5, 2.0), "dead": (0.0, 0.0)})
    path = write_cache(r.amaxes(), tmp_path / "model.cache", version=version_code("8.6.1"))
    header, scales = read_cache(path)
    assert header == "TRT-8601-EntropyCalibration2"
    assert "image: 3c010204" in path.read_text().splitlines()  # 1/127, as TensorRT writes it
    assert scales["/conv/Conv_output_0"] == pytest.approx(3.5 / 127, rel=1e-6)
    assert scales["dead"] > 0
    header10, scales10 = read_cache(retag(path, version_code("10.3.0"), tmp_path / "trt10.cache"))
    assert header10 == "TRT-100300-EntropyCalibration2" and scales10 == scales
    (tmp_path / "junk.cache").write_text("hello\n")
    with pytest.raises(ValueError, match="not a TensorRT calibration cache"):
        read_cache(tmp_path / "junk.cache")
    assert struct.pack(">f", scales["image"]).hex() == "3c010204"


def _small_conv_model(path: Path) -> Path:
    """Two convolutions on an RGB input: the entropy calibrator's cost grows with the number of tensors, and
    the property below is one of the calibrator, not of the restorer (res-s took minutes here)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.normal(0, 0.5, (8, 3, 3, 3)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.normal(0, 0.3, (3, 8, 3, 3)).astype(np.float32), "w2")
    nodes = [helper.make_node("Conv", ["image", "w1"], ["h"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("Relu", ["h"], ["r"], name="relu"),
             helper.make_node("Conv", ["r", "w2"], ["restored"], pads=[1, 1, 1, 1], name="conv2")]
    graph = helper.make_graph(nodes, "small", [helper.make_tensor_value_info("image", TensorProto.FLOAT,
                                                                             [1, 3, "h", "w"])],
                              [helper.make_tensor_value_info("restored", TensorProto.FLOAT, [1, 3, "h", "w"])],
                              [w1, w2])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_entropy_differs_from_minmax(fundus_dir: Path, tmp_path: Path) -> None:
    """2048 bins: entropy clips outliers, so some ranges are narrower than MinMax's."""
    model = _small_conv_model(tmp_path / "small.onnx")
    paths = sorted(fundus_dir.iterdir())[:2]
    mm = collect_ranges(model, FundusCalibrationReader(paths, [(64, 64)], progress=False), "minmax")
    en = collect_ranges(model, FundusCalibrationReader(paths, [(64, 64)], progress=False), "entropy")
    common = set(mm.ranges) & set(en.ranges)
    assert common
    assert any(en.amax(n) < 0.99 * mm.amax(n) for n in common)


def test_int8_qdq_runs_as_int8_on_openvino(random_onnx: Path, fundus_dir: Path, tmp_path: Path) -> None:
    """The same Q/DQ file on OpenVINO's CPU plugin: INT8 kernels, within the report's threshold of FP32."""
    pytest.importorskip("openvino")
    from ftrt.runtime.backends import open_backend

    out = tmp_path / "m.int8.onnx"
    res = CliRunner().invoke(main, ["calibrate", str(random_onnx), "--images", str(fundus_dir), "-o", str(out),
                                    "--num", "4", "--shape", "96x96", "--eval-num", "2", "--report-backend",
                                    "openvino", "--report", str(tmp_path / "r.json"), "--json"])
    assert res.exit_code == 0, res.output
    line = json.loads(res.output.strip().splitlines()[-1])
    assert line["report_backend"] == "openvino" and line["summary"]["psnr_vs_fp32_worst"] >= 35.0
    assert "on OpenVINO CPU vs FP32" in (tmp_path / "r.md").read_text()
    with open_backend("openvino", str(out), threads=1) as ov:
        assert ov.info.precision == "int8-qdq"  # the file's precision, not the f32 hint
        runtime = ov.request.get_compiled_model().get_runtime_model()
        convs = [op.get_rt_info()["runtimePrecision"].astype(str) for op in runtime.get_ordered_ops()
                 if op.get_rt_info()["layerType"].astype(str) == "Convolution"]
        # The quantized convolutions really run as 8-bit integers: OpenVINO picks signed (i8, AMX) or unsigned
        # (u8, VNNI / AVX2) activations by what the CPU has, so either counts.
        assert sum(c in ("i8", "u8") for c in convs) > 10, convs


@pytest.mark.slow
def test_int8_qdq_runs_in_ort_within_threshold(random_onnx: Path, fundus_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.int8.onnx"
    res = calibrate_int8(random_onnx, [str(fundus_dir)], out, num=4, shapes=["96x96"], keep="auto",
                         cache=tmp_path / "m.cache", report_path=tmp_path / "report.json", eval_num=2,
                         progress=False, log=lambda m: None)
    proto = onnx.load(str(out))
    onnx.checker.check_model(proto, full_check=True)
    ops = {n.op_type for n in proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert get_metadata(proto)["precision"] == "int8-qdq"
    assert res.details["quantized_convs"] > 10 and len(res.details["fp32_nodes"]) >= 2
    assert res.report["summary"]["held_out"] and res.report["summary"]["images"] == 2
    assert res.report["summary"]["psnr_vs_fp32_worst"] >= 35.0 and not res.failures
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rep["rows"] and (tmp_path / "report.md").read_text().startswith("# INT8 accuracy report")
    assert check(rep, min_psnr=500.0)  # an impossible threshold fails
    # Restoring with it on ORT's CPU provider works, with a note on where INT8 is fast on a CPU.
    res_cli = CliRunner().invoke(main, ["restore", str(sorted(fundus_dir.glob("*.png"))[0]), "-o",
                                        str(tmp_path / "restored"), "--model", str(out), "--backend", "ort"])
    assert res_cli.exit_code == 0 and "--backend openvino runs them as INT8" in res_cli.stderr
    # The cache names the FP32 graph's tensors, which is what TensorRT's legacy INT8 path sees.
    fp32_tensors = {o for n in onnx.load(str(random_onnx)).graph.node for o in n.output}
    _, scales = read_cache(tmp_path / "m.cache")
    assert set(scales) - {"image"} <= fp32_tensors


@pytest.mark.slow
def test_fp16_conversion_within_threshold(random_onnx: Path, fundus_dir: Path, tmp_path: Path) -> None:
    res = convert_fp16_model(random_onnx, tmp_path / "m.fp16.onnx", images=[str(fundus_dir)], eval_num=2,
                             progress=False)
    proto = onnx.load(str(tmp_path / "m.fp16.onnx"))
    onnx.checker.check_model(proto, full_check=True)
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in proto.graph.initializer)
    assert res.report["summary"]["psnr_vs_fp32_worst"] >= 45.0 and not res.failures


def test_cli_threshold_exit_code_and_no_overwrite(random_onnx: Path, fundus_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(main, ["convert", str(random_onnx), "--fp16", "-o", str(random_onnx)])
    assert res.exit_code == 2 and "overwrite" in res.output
    out = tmp_path / "m.fp16.onnx"
    res = runner.invoke(main, ["convert", str(random_onnx), "--fp16", "-o", str(out), "--images", str(fundus_dir),
                               "--min-psnr", "500", "--json"])
    assert res.exit_code == 1 and "below" in res.output
    assert out.exists()  # written for inspection, but the exit code says it failed
    res = runner.invoke(main, ["calibrate", str(random_onnx), "--images", str(tmp_path / "nothing-here"), "-o",
                               str(tmp_path / "x.onnx")])
    assert res.exit_code == 2 and "error:" in res.output


def _modelopt_or_skip() -> None:
    if modelopt.version() is None:
        pytest.skip("NVIDIA ModelOpt is not installed here (pip install 'nvidia-modelopt[onnx]', in its own "
                    "environment: it pins onnxruntime-gpu)")


def test_modelopt_int8_and_fp16_within_threshold(random_onnx: Path, fundus_dir: Path, tmp_path: Path) -> None:
    """The same decisions through NVIDIA ModelOpt's quantizer and AutoCast, wherever ModelOpt is installed."""
    _modelopt_or_skip()
    fp32_meta = get_metadata(onnx.load(str(random_onnx)))
    res = calibrate_int8(random_onnx, [str(fundus_dir)], tmp_path / "mo.int8.onnx", num=3, shapes=["96x96"],
                         eval_num=2, quantizer="modelopt", progress=False, log=lambda m: None)
    proto = onnx.load(str(tmp_path / "mo.int8.onnx"))
    onnx.checker.check_model(proto, full_check=True)
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in proto.graph.node}
    meta = get_metadata(proto)
    assert meta["quantizer"].startswith("nvidia-modelopt") and meta["precision"] == "int8-qdq"
    assert meta["pad_multiple"] == fp32_meta["pad_multiple"]  # ModelOpt drops metadata; ftrt puts it back
    assert res.report["summary"]["psnr_vs_fp32_worst"] >= 35.0 and not res.failures
    res = convert_fp16_model(random_onnx, tmp_path / "mo.fp16.onnx", images=[str(fundus_dir)], eval_num=2,
                             converter="modelopt", progress=False)
    proto = onnx.load(str(tmp_path / "mo.fp16.onnx"))
    onnx.checker.check_model(proto, full_check=True)
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in proto.graph.initializer)
    assert get_metadata(proto)["converter"].endswith("AutoCast")
    assert res.report["summary"]["psnr_vs_fp32_worst"] >= 45.0 and not res.failures


def test_quantizer_and_converter_choice(monkeypatch: pytest.MonkeyPatch, random_onnx: Path, fundus_dir: Path,
                                        tmp_path: Path) -> None:
    monkeypatch.setattr(modelopt, "version", lambda: None)
    assert modelopt.choose("auto", "--quantizer") == "ftrt"
    with pytest.raises(ValueError, match="ModelOpt is not installed"):
        modelopt.choose("modelopt", "--converter")
    with pytest.raises(ValueError, match="unknown --quantizer 'tensorrt'"):
        modelopt.choose("tensorrt", "--quantizer")
    res = CliRunner().invoke(main, ["calibrate", str(random_onnx), "--images", str(fundus_dir), "-o",
                                    str(tmp_path / "x.onnx"), "--quantizer", "modelopt"])
    assert res.exit_code == 2 and "pip install 'nvidia-modelopt[onnx]'" in res.output
    monkeypatch.setattr(modelopt, "version", lambda: "0.47.0")
    assert modelopt.choose("auto", "--quantizer") == "modelopt" and modelopt.choose("ftrt", "--quantizer") == "ftrt"
    with pytest.raises(ValueError, match="percentile"):  # ModelOpt has no percentile calibrator
        calibrate_int8(random_onnx, [str(fundus_dir)], tmp_path / "x.onnx", method="percentile",
                       quantizer="modelopt", progress=False, log=lambda m: None)


def test_report_runs_both_models_at_the_fp32_working_size(fundus_dir: Path, tmp_path: Path) -> None:
    """A low-precision file that lost its metadata must still be compared at the FP32 model's working size."""
    from ftrt.precision.report import precision_report
    from ftrt.runtime.models import WEIGHTS_DIR

    fp32 = WEIGHTS_DIR / "res-s.onnx"
    bare = onnx.load(str(fp32))
    assert get_metadata(bare).get("work_side")
    del bare.metadata_props[:]
    onnx.save(bare, str(tmp_path / "bare.onnx"))
    rep = precision_report(fp32, tmp_path / "bare.onnx", sorted(fundus_dir.glob("*.png"))[:2], "fp32",
                           threads=1, progress=False)
    # Same weights at the same size: equal up to float rounding (not bit-identical: without metadata the
    # bare copy has no pad_multiple, so ORT's CPU layout pass leaves its convs widened instead of on row pairs).
    assert rep["summary"]["psnr_vs_fp32_worst"] > 120
