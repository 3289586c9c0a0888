"""TensorRT engine logic that needs no TensorRT: profiles, version decisions, the sidecar guard, messages."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ftrt.cli import main
from ftrt.engine.build import BuildError, BuildOptions, plan_build
from ftrt.engine.host import TensorRTUnavailable, host_info, trt_module
from ftrt.engine.profiles import EngineProfile, default_profiles, parse_profile, select_profile
from ftrt.engine.sidecar import (
    EngineMismatch,
    HostInfo,
    build_sidecar,
    check_compatible,
    read_sidecar,
    rebuild_command,
    write_sidecar,
)
from ftrt.runtime import FundusPipeline, PipelineConfig
from ftrt.runtime.backends.base import Backend, BackendInfo, ShapeProfile, TensorSpec

try:
    trt_module()
    HAVE_TRT = True
except TensorRTUnavailable:
    HAVE_TRT = False


# ---------------------------------------------------------------- profiles
def test_parse_profiles() -> None:
    p = parse_profile("512x512:1024x1024:1536x1536")
    assert p.min == (1, 512, 512) and p.max == (1, 1536, 1536)
    assert str(p) == "512x512:1024x1024:1536x1536"
    b = parse_profile("1x256x256:4x512x512:8x1024x1024")
    assert b.opt == (4, 512, 512) and b.nchw()[2] == (8, 3, 1024, 1024)
    for bad in ("512x512", "512:1024:1536", "1024x1024:512x512:1536x1536", "16x16:32x32:64x64"):
        with pytest.raises(ValueError):
            parse_profile(bad)


def test_select_profile_prefers_the_closest_opt_and_reports_no_fit() -> None:
    narrow, generic = default_profiles(work_side=320)
    profiles = [narrow, generic]
    assert narrow.opt == (1, 320, 320) and generic.max == (1, 2048, 2048)
    assert select_profile(profiles, (1, 320, 300)) == 0
    assert select_profile(profiles, (1, 1000, 1100)) == 1
    assert select_profile(profiles, (1, 4000, 3000)) is None
    assert select_profile(profiles, (2, 320, 320)) is None  # batch outside both


def test_profile_round_trips_through_the_sidecar_dict() -> None:
    p = parse_profile("2x64x64:2x128x96:4x256x256")
    assert EngineProfile.from_dict(json.loads(json.dumps(p.as_dict()))) == p


# ---------------------------------------------------------------- version decisions
@pytest.mark.parametrize("version,precision,fp16,calib,expected", [
    ("8.6.2", "fp32", False, False, dict(explicit_batch_flag=True, strongly_typed=False, fp16_flag=False)),
    ("8.6.2", "fp16-mixed", False, False, dict(fp16_flag=True, strongly_typed=False)),
    ("8.6.2", "int8-qdq", False, False, dict(int8_flag=True, use_calib_cache=False)),
    ("8.6.2", "fp32", True, True, dict(fp16_flag=True, int8_flag=True, use_calib_cache=True)),
    ("10.3.0", "fp32", True, False, dict(explicit_batch_flag=False, fp16_flag=True, strongly_typed=False)),
    ("10.3.0", "int8-qdq", False, False, dict(strongly_typed=True, int8_flag=False)),
    ("11.0.0", "fp16-mixed", False, False, dict(strongly_typed=True, fp16_flag=False, int8_flag=False)),
])
def test_build_plan_per_tensorrt_version(version: str, precision: str, fp16: bool, calib: bool,
                                         expected: dict) -> None:
    opts = BuildOptions(fp16=fp16, calib_cache=Path("x.cache") if calib else None)
    plan = plan_build(version, precision, opts)
    for k, v in expected.items():
        assert getattr(plan, k) == v, (k, plan)


def test_removed_features_are_refused_with_the_replacement_command() -> None:
    with pytest.raises(BuildError, match="ftrt convert"):
        plan_build("11.1.0", "fp32", BuildOptions(fp16=True))
    with pytest.raises(BuildError, match="ftrt calibrate"):
        plan_build("11.1.0", "fp32", BuildOptions(calib_cache=Path("m.cache")))
    with pytest.raises(BuildError, match="already carries its precision"):
        plan_build("10.3.0", "int8-qdq", BuildOptions(fp16=True))
    with pytest.raises(BuildError, match="not supported"):
        plan_build("7.2.3", "fp32", BuildOptions())


# ---------------------------------------------------------------- sidecar guard
@pytest.fixture()
def fake_engine(tmp_path: Path) -> tuple[Path, dict]:
    """A file with TensorRT's plan magic and a sidecar, as build-engine writes them."""
    onnx_path = tmp_path / "m.onnx"
    onnx_path.write_bytes(b"onnx bytes")
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"ftrt" + bytes(20) + bytes([10, 3, 0, 0]) + bytes(64))
    host = HostInfo("10.3.0", "Orin", "8.7", "12.6")
    data = build_sidecar(engine=engine, onnx_path=onnx_path, onnx_metadata={"work_side": "320"}, host=host,
                         profiles=default_profiles(320), precision={"onnx": "fp32"}, flags={},
                         ftrt_version="test", io=[])
    write_sidecar(engine, data)
    return engine, read_sidecar(engine)


def test_sidecar_accepts_the_host_it_was_built_on(fake_engine: tuple[Path, dict]) -> None:
    engine, data = fake_engine
    check_compatible(engine, data, HostInfo("10.3.0", "Orin", "8.7"))
    assert data["plan_header"]["magic_ok"] and data["plan_header"]["version_bytes"] == "0a030000"


@pytest.mark.parametrize("host,msg", [
    (HostInfo("10.7.0", "Orin", "8.7"), "built with TensorRT 10.3.0, this host has 10.7.0"),
    (HostInfo("10.3.0", "NVIDIA H100", "9.0"), "compute capability 8.7"),
])
def test_sidecar_refuses_another_host_with_the_rebuild_command(fake_engine: tuple[Path, dict], host: HostInfo,
                                                               msg: str) -> None:
    engine, data = fake_engine
    with pytest.raises(EngineMismatch, match=msg) as err:
        check_compatible(engine, data, host)
    assert "ftrt build-engine" in str(err.value) and "--profile 160x160:320x320:320x320" in str(err.value)


def test_sidecar_refuses_a_changed_or_foreign_file(fake_engine: tuple[Path, dict], tmp_path: Path) -> None:
    engine, data = fake_engine
    engine.write_bytes(engine.read_bytes() + b"tampered")
    with pytest.raises(EngineMismatch, match="sha256"):
        check_compatible(engine, data, HostInfo("10.3.0", "Orin", "8.7"))
    other = tmp_path / "other.engine"
    other.write_bytes(b"PK\x03\x04 not a plan")
    with pytest.raises(EngineMismatch, match="no sidecar"):
        read_sidecar(other)
    assert rebuild_command(engine, data).startswith(f"ftrt build-engine {tmp_path / 'm.onnx'} -o {engine}")


# ---------------------------------------------------------------- without TensorRT
@pytest.mark.skipif(HAVE_TRT, reason="TensorRT is installed here")
def test_build_engine_without_tensorrt_is_one_line_and_nonzero(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["build-engine", str(Path(__file__)), "-o", str(tmp_path / "x.engine")])
    assert res.exit_code == 2
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "TensorRT is not installed" in lines[0] and "pip install" in lines[0]
    assert host_info().trt_version is None


def test_info_reads_an_engine_sidecar_without_tensorrt(fake_engine: tuple[Path, dict]) -> None:
    engine, _ = fake_engine
    res = CliRunner().invoke(main, ["info", str(engine)])
    assert res.exit_code == 0, res.output
    assert "TensorRT 10.3.0; GPU Orin (compute 8.7)" in res.output and "profile 1:" in res.output


# ---------------------------------------------------------------- the pipeline with bounded profiles
class _BoundedIdentity(Backend):
    """Stands in for an engine: accepts only shapes inside its profiles, like TensorRT does."""

    def __init__(self, max_side: int) -> None:
        self.seen: list[tuple[int, ...]] = []
        p = ShapeProfile((1, 3, 32, 32), (1, 3, max_side, max_side), (1, 3, max_side, max_side))
        self.info = BackendInfo(name="bounded", device="cpu", precision="fp32", profiles=[p],
                                metadata={"work_side": "0"})

    def open(self) -> _BoundedIdentity:
        return self

    @property
    def input_spec(self) -> TensorSpec:
        return TensorSpec("image", ("batch", 3, "height", "width"), "tensor(float)")

    def run(self, batch: np.ndarray) -> np.ndarray:
        if not self.supports_shape(batch.shape):
            raise ValueError(f"shape {batch.shape} outside the profile")
        self.seen.append(batch.shape)
        return batch


def test_pipeline_tiles_what_falls_outside_the_engine_profiles(retina: np.ndarray) -> None:
    be = _BoundedIdentity(160)
    res = FundusPipeline(be, PipelineConfig(max_side=0, tile=None, overlap=16)).restore(retina)
    assert res.info["tiled"] and "outside the engine's profiles" in res.info["notice"]
    assert all(max(s[2:]) <= 160 for s in be.seen)
    np.testing.assert_allclose(res.image, retina * res.mask[..., None], atol=1e-5)


def test_restore_with_trt_backend_without_tensorrt_is_a_clear_error(fake_engine: tuple[Path, dict],
                                                                    retina_png: Path, tmp_path: Path) -> None:
    engine, _ = fake_engine
    res = CliRunner().invoke(main, ["restore", str(retina_png), "-o", str(tmp_path / "out"), "--backend", "trt",
                                    "--model", str(engine)])
    if HAVE_TRT:
        assert res.exit_code != 0
    else:
        assert res.exit_code == 2 and "TensorRT is not installed" in res.output


def test_ort_tensorrt_provider_gets_the_generic_profile(random_onnx: Path) -> None:
    from ftrt.runtime.backends.ort import OrtBackend

    opts = OrtBackend(random_onnx, provider="tensorrt")._trt_profile_options()
    assert opts["trt_profile_max_shapes"] == "image:1x3x2048x2048"
    assert opts["trt_profile_min_shapes"] == "image:1x3x256x256"
