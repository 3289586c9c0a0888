"""The Triton model repository: written offline, checked against its models, its Python model run for real."""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from ftrt.cli import main
from ftrt.io import read_image, write_image
from ftrt.serving.repository import check_repository, export_repository, parse_pbtxt


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, random_onnx: Path) -> Path:
    out = tmp_path_factory.mktemp("repo") / "models"
    export_repository([str(random_onnx)], out, max_batch=8, instances=2, dynamic_batching=True)
    return out


def test_layout_and_configs_match_the_models(repo: Path, random_onnx: Path) -> None:
    name = random_onnx.stem.replace(".", "_")
    assert sorted(p.name for p in repo.iterdir()) == sorted(["fundus_restore", "readability", name])
    cfg = parse_pbtxt((repo / name / "config.pbtxt").read_text())
    assert cfg["platform"] == "onnxruntime_onnx" and cfg["max_batch_size"] == 8
    assert cfg["input"][0]["dims"] == [3, -1, -1] and cfg["output"][0]["data_type"] == "TYPE_FP32"
    assert cfg["instance_group"][0] == {"count": 2, "kind": "KIND_CPU"} and "dynamic_batching" in cfg
    pipe = parse_pbtxt((repo / "fundus_restore" / "config.pbtxt").read_text())
    assert pipe["backend"] == "python" and pipe["max_batch_size"] == 0
    assert [t["name"] for t in pipe["output"]] == ["RESTORED", "RECORD"]
    for model in repo.iterdir():
        assert (model / "1" / "card.json").is_file()
    assert check_repository(repo) == []


def test_check_finds_a_config_that_lies(repo: Path, tmp_path: Path, random_onnx: Path) -> None:
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(repo, bad)
    name = random_onnx.stem.replace(".", "_")
    cfg = bad / name / "config.pbtxt"
    cfg.write_text(cfg.read_text().replace("dims: [ 3, -1, -1 ]", "dims: [ 4, -1, -1 ]", 1))
    (bad / "readability" / "config.pbtxt").write_text('name: "readability"\ninput [ { name: "x" ')
    (bad / "fundus_restore" / "1" / "model.py").unlink()
    problems = check_repository(bad)
    assert any("says TYPE_FP32 [3, -1, -1]" in p for p in problems)
    assert any("does not parse" in p for p in problems)
    assert any("no 1/model.py" in p for p in problems)
    r = CliRunner().invoke(main, ["triton", "check", str(bad)])
    assert r.exit_code == 1


def test_export_refuses_a_non_empty_folder_and_an_engine_only_pipeline(tmp_path: Path, random_onnx: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep me")
    r = CliRunner().invoke(main, ["triton", "export", "--model", str(random_onnx), "-o", str(tmp_path / "full")])
    assert r.exit_code == 2 and "not empty" in r.output and (tmp_path / "full" / "x").read_text() == "keep me"
    r = CliRunner().invoke(main, ["triton", "export", "--model", str(random_onnx), "-o", str(tmp_path / "r"),
                                  "--no-pipeline", "--gate", "none", "--json"])
    assert r.exit_code == 0 and [m["name"] for m in json.loads(r.output)["models"]] == [random_onnx.stem]


class _FakeBackendUtils(types.ModuleType):
    """What Triton's Python stub provides as ``triton_python_backend_utils`` (the parts model.py uses)."""

    class Tensor:
        def __init__(self, name: str, data: np.ndarray) -> None:
            self.name, self.data = name, data

        def as_numpy(self) -> np.ndarray:
            return self.data

    class TritonError:
        def __init__(self, message: str) -> None:
            self.message = message

    class InferenceResponse:
        def __init__(self, output_tensors: list[Any], error: Any = None) -> None:
            self.output_tensors, self.error = output_tensors, error

    @staticmethod
    def get_input_tensor_by_name(request: dict[str, np.ndarray], name: str) -> Any:
        return _FakeBackendUtils.Tensor(name, request[name])


def test_python_model_restores_like_ftrt_restore_and_refuses_bad_requests(repo: Path, tmp_path: Path,
                                                                          retina: np.ndarray) -> None:
    sys.modules["triton_python_backend_utils"] = _FakeBackendUtils("triton_python_backend_utils")
    try:
        spec = importlib.util.spec_from_file_location("fundus_restore_model", repo / "fundus_restore" / "1" / "model.py")
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        model = mod.TritonPythonModel()
        model.initialize({"model_repository": str(repo / "fundus_restore"), "model_version": "1"})
        img_u8 = np.clip(np.rint(retina[:200, :240] * 255), 0, 255).astype(np.uint8)
        requests = [{"IMAGE": img_u8}, {"IMAGE": img_u8.astype(np.float32)}, {"IMAGE": img_u8[..., 0]},
                    {"IMAGE": np.zeros((0, 0, 3), np.uint8)}, {"IMAGE": np.zeros((16, 9000, 3), np.uint8)},
                    {"IMAGE": img_u8}]
        responses = model.execute(requests)
        model.finalize()
    finally:
        del sys.modules["triton_python_backend_utils"]
    assert [r.error is None for r in responses] == [True, False, False, False, False, True]
    assert "UINT8" in responses[1].error.message and "H x W x 3" in responses[2].error.message
    restored = responses[0].output_tensors[0].data
    record = json.loads(responses[0].output_tensors[1].data[0])
    assert restored.shape == img_u8.shape and record["status"] == "ok" and "readability_after" in record
    # The same photograph through `ftrt restore` with the same model and backend: identical pixels.
    src = write_image(tmp_path / "a.png", img_u8.astype(np.float32) / 255)
    onnx_path = repo / "fundus_restore" / "1" / json.loads((repo / "fundus_restore" / "1" / "ftrt.json").read_text())["restorer"]
    r = CliRunner().invoke(main, ["restore", str(src), "-o", str(tmp_path / "out"), "--model", str(onnx_path),
                                  "--backend", "ort"])
    assert r.exit_code == 0, r.output
    local = np.clip(np.rint(read_image(tmp_path / "out" / "a.png")[0] * 255), 0, 255).astype(np.uint8)
    assert np.array_equal(local, restored)
    assert np.array_equal(responses[5].output_tensors[0].data, restored)  # deterministic across requests


def test_bls_layout_names_its_targets_and_check_finds_a_missing_one(tmp_path: Path, random_onnx: Path) -> None:
    import shutil

    out = tmp_path / "bls"
    export_repository([str(random_onnx)], out, network="bls", raw_backend="python")
    assert check_repository(out) == []
    network = json.loads((out / "fundus_restore" / "1" / "ftrt.json").read_text())["network"]
    name = random_onnx.stem.replace(".", "_")
    assert network["restorer"]["model_name"] == name and network["gate"]["model_name"] == "readability"
    assert not list((out / "fundus_restore" / "1").glob("*.onnx"))  # the networks live in their own models
    raw = parse_pbtxt((out / name / "config.pbtxt").read_text())
    assert raw["backend"] == "python" and (out / name / "1" / "model.onnx").is_file()
    shutil.rmtree(out / "readability")
    assert any("BLS gate model 'readability' is not in the repository" in p for p in check_repository(out))
    prod = tmp_path / "prod"
    export_repository([str(random_onnx)], prod, network="bls", gpu=True)
    assert parse_pbtxt((prod / name / "config.pbtxt").read_text())["platform"] == "onnxruntime_onnx"
    assert check_repository(prod) == []
