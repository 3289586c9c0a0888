"""The OpenVINO CPU backend: same ONNX, same answers as ONNX Runtime, through the same pipeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("openvino")

from ftrt.metrics import psnr  # noqa: E402
from ftrt.runtime import FundusPipeline, PipelineConfig, open_backend  # noqa: E402
from ftrt.runtime.backends import BackendUnavailable  # noqa: E402


def test_matches_onnx_runtime_on_odd_shapes_and_batches(random_onnx: Path) -> None:
    rng = np.random.default_rng(0)
    with open_backend("ort", str(random_onnx), threads=1) as ref, \
            open_backend("openvino", str(random_onnx), threads=1) as ov:
        assert ov.info.name == "openvino" and ov.info.precision == "fp32"
        assert ov.info.metadata["pad_multiple"] == ref.info.metadata["pad_multiple"]  # ftrt metadata carried
        for shape in ((1, 3, 97, 131), (2, 3, 64, 64), (1, 3, 33, 200)):
            x = rng.uniform(size=shape).astype(np.float32)
            assert np.abs(ov.run(x) - ref.run(x)).max() < 1e-4


def test_pipeline_and_bf16(random_onnx: Path, retina: np.ndarray) -> None:
    with open_backend("ort", str(random_onnx), threads=1) as ref:
        expected = FundusPipeline(ref, PipelineConfig(max_side=128)).restore(retina).image
    with open_backend("openvino", str(random_onnx), threads=1) as ov:
        got = FundusPipeline(ov, PipelineConfig(max_side=128)).restore(retina).image
    assert np.abs(got - expected).max() < 1e-4
    try:
        half = open_backend("openvino-bf16", str(random_onnx), threads=1)
    except BackendUnavailable as exc:
        assert "bfloat16" in str(exc)
        return
    with half:
        assert psnr(FundusPipeline(half, PipelineConfig(max_side=128)).restore(retina).image, expected) > 35


def test_bad_model_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx file")
    with pytest.raises((ValueError, RuntimeError)):
        open_backend("openvino", str(bad))
    with pytest.raises(FileNotFoundError):
        open_backend("openvino", str(tmp_path / "missing.onnx"))
