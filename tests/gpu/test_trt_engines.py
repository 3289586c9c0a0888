"""TensorRT engines end to end. Runs on any machine with TensorRT, a GPU and cuda-python (or pycuda);
skipped elsewhere (CI has neither) with the reason."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from ftrt.engine.host import TensorRTUnavailable, host_info, trt_module
from ftrt.metrics import psnr
from ftrt.runtime import FundusPipeline, PipelineConfig, open_backend
from ftrt.runtime.models import WEIGHTS_DIR

pytestmark = [pytest.mark.trt, pytest.mark.gpu]

try:
    trt_module()
    _reason = None if host_info().gpu_name else "no NVIDIA GPU visible through cuda-python or pycuda"
except TensorRTUnavailable as exc:
    _reason = str(exc)
if _reason is None and not (WEIGHTS_DIR / "res-s.onnx").exists():
    _reason = "no shipped res-s.onnx"
if _reason:
    pytestmark.append(pytest.mark.skip(reason=_reason))


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory, retina: np.ndarray) -> dict[str, Path]:
    from ftrt.precision import calibrate_int8, convert_fp16_model
    from ftrt.engine.build import BuildOptions, build_engine
    from ftrt.engine.profiles import parse_profile
    from ftrt.io import write_image

    d = tmp_path_factory.mktemp("trt")
    imgs = d / "imgs"
    for i in range(4):
        write_image(imgs / f"f{i}.png", np.clip(retina * (0.85 + 0.1 * i), 0, 1))
    fp32 = WEIGHTS_DIR / "res-s.onnx"
    convert_fp16_model(fp32, d / "fp16.onnx", images=[str(imgs)], eval_num=1, progress=False)
    calibrate_int8(fp32, [str(imgs)], d / "int8.onnx", num=3, shapes=["256x256"], eval_num=1, progress=False,
                   log=lambda m: None)
    profiles = [parse_profile("128x128:256x256:256x256"), parse_profile("256x256:512x512:768x768")]
    out = {}
    for name, onnx_path in (("fp32", fp32), ("fp16", d / "fp16.onnx"), ("int8", d / "int8.onnx")):
        out[name] = d / f"{name}.engine"
        build_engine(onnx_path, out[name], BuildOptions(profiles=list(profiles), timing_cache=d / "timing.cache"),
                     log=lambda m: None)
    return out


def _restore(backend: str, model: str, img: np.ndarray, **opts) -> np.ndarray:
    with open_backend(backend, model, **opts) as be:
        return FundusPipeline(be, PipelineConfig(max_side=256)).restore(img).image


@pytest.mark.parametrize("precision,min_db", [("fp32", 60.0), ("fp16", 45.0), ("int8", 35.0)])
def test_engine_matches_onnx_runtime(engines: dict[str, Path], retina: np.ndarray, precision: str,
                                     min_db: float) -> None:
    ref = _restore("ort", "res-s", retina)
    out = _restore("trt", str(engines[precision]), retina)
    assert psnr(out, ref) >= min_db


def test_profiles_switch_across_sizes_and_outside_sizes_are_tiled(engines: dict[str, Path],
                                                                  retina_full: np.ndarray) -> None:
    import cv2

    with open_backend("trt", str(engines["fp32"])) as be:
        for side in (200, 600):
            x = np.random.default_rng(side).uniform(size=(1, 3, side, side)).astype(np.float32)
            assert be.run(x).shape == x.shape
        big = cv2.resize(retina_full, (1000, 1000), interpolation=cv2.INTER_AREA)
        res = FundusPipeline(be, PipelineConfig(max_side=0, tile=None)).restore(big)
        assert res.info["tiled"] and "outside the engine's profiles" in res.info["notice"]


def test_cuda_graph_path_gives_the_same_result(engines: dict[str, Path], retina: np.ndarray) -> None:
    plain = _restore("trt", str(engines["fp32"]), retina)
    graphed = _restore("trt", str(engines["fp32"]), retina, cuda_graph=True)
    np.testing.assert_allclose(plain, graphed, atol=1e-6)


def test_mismatched_host_is_refused(engines: dict[str, Path]) -> None:
    import json

    from ftrt.engine.sidecar import EngineMismatch, check_compatible, read_sidecar

    data = read_sidecar(engines["fp32"])
    wrong = dataclasses.replace(host_info(), trt_version="0.0.0")
    with pytest.raises(EngineMismatch, match="Rebuild it here: ftrt build-engine"):
        check_compatible(engines["fp32"], data, wrong)
    assert json.dumps(data)


def test_engine_reports_device_split(engines: dict[str, Path]) -> None:
    x = np.random.default_rng(0).uniform(size=(1, 3, 256, 256)).astype(np.float32)
    with open_backend("trt", str(engines["fp16"])) as be:
        be.run(x)
        assert set(be.last_timing) == {"h2d", "compute", "d2h"} and all(v > 0 for v in be.last_timing.values())
        assert (be.gpu_memory_mb() or 0) > 0
