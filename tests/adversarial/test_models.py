"""Models and sidecars are untrusted input: every malformed file is refused once, by name, in one line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from click.testing import CliRunner

from ftrt.cli import main
from ftrt.io import write_image
from tests.adversarial import hostile as h


def _safetensors(header: object, data: bytes = b"", claim: int | None = None) -> bytes:
    raw = json.dumps(header).encode()
    return (len(raw) if claim is None else claim).to_bytes(8, "little") + raw + data


SAFETENSORS: dict[str, Callable[[], bytes]] = {
    "empty": lambda: b"",
    "header_longer_than_file": lambda: _safetensors({}, claim=10**6),
    "header_length_absurd": lambda: (2**63 - 1).to_bytes(8, "little"),
    "header_not_json": lambda: (8).to_bytes(8, "little") + b"not json",
    "header_a_list": lambda: _safetensors([1, 2]),
    "unknown_dtype": lambda: _safetensors({"w": {"dtype": "Q7", "shape": [1], "data_offsets": [0, 4]}}, bytes(4)),
    "tensor_past_the_end": lambda: _safetensors({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, bytes(8)),
    "shape_disagrees_with_bytes": lambda: _safetensors({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}},
                                                       bytes(8)),
    "metadata_not_strings": lambda: _safetensors({"__metadata__": {"ftrt": 5}}),
    "ftrt_metadata_not_json": lambda: _safetensors({"__metadata__": {"ftrt": "{oops"}}),
}


@pytest.mark.parametrize("kind", sorted(SAFETENSORS))
def test_info_on_malformed_safetensors(tmp_path: Path, kind: str) -> None:
    p = tmp_path / f"{kind}.safetensors"
    p.write_bytes(SAFETENSORS[kind]())
    r = CliRunner().invoke(main, ["info", str(p)])
    assert r.exit_code == 2 and r.output.startswith(f"error: {p}") and r.output.count("\n") == 1, r.output


@pytest.mark.parametrize("kind", ["tensor_past_the_end", "header_longer_than_file", "shape_disagrees_with_bytes"])
def test_restore_with_malformed_weights_fails_once(tmp_path: Path, kind: str) -> None:
    p = tmp_path / f"{kind}.safetensors"
    p.write_bytes(SAFETENSORS[kind]())
    img = tmp_path / "a.png"
    write_image(img, h.small_rgb().astype(np.float32) / 255)
    r = CliRunner().invoke(main, ["restore", str(img), "-o", str(tmp_path / "o"), "--model", str(p)])
    assert r.exit_code != 0 and str(p) in r.output and "Traceback" not in r.output
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())


ONNX_FILES: dict[str, Callable[[Path], bytes]] = {
    "empty": lambda ref: b"",
    "garbage": lambda ref: b"\x08\x07garbage" * 10,
    "truncated": lambda ref: ref.read_bytes()[:3000],
}


@pytest.mark.parametrize("kind", sorted(ONNX_FILES))
def test_info_and_restore_on_broken_onnx(tmp_path: Path, random_onnx: Path, kind: str) -> None:
    p = tmp_path / f"{kind}.onnx"
    p.write_bytes(ONNX_FILES[kind](random_onnx))
    r = CliRunner().invoke(main, ["info", str(p)])
    assert r.exit_code == 2 and r.output.startswith(f"error: {p}") and r.output.count("\n") == 1, r.output
    img = tmp_path / "a.png"
    write_image(img, h.small_rgb().astype(np.float32) / 255)
    r = CliRunner().invoke(main, ["restore", str(img), "-o", str(tmp_path / "o"), "--model", str(p)])
    assert r.exit_code == 2 and str(p) in r.output and "Traceback" not in r.output


def _graph(name: str, path: Path) -> Path:
    import onnx
    from onnx import TensorProto as T
    from onnx import helper

    f = helper.make_tensor_value_info
    graphs = {
        "nhwc": ([f("x", T.FLOAT, ["N", "H", "W", 3])], [f("y", T.FLOAT, ["N", "H", "W", 3])],
                 [helper.make_node("Identity", ["x"], ["y"])]),
        "uint8": ([f("x", T.UINT8, ["N", 3, "H", "W"])], [f("y", T.UINT8, ["N", 3, "H", "W"])],
                  [helper.make_node("Identity", ["x"], ["y"])]),
        "two_inputs": ([f("x", T.FLOAT, ["N", 3, "H", "W"]), f("z", T.FLOAT, ["N", 3, "H", "W"])],
                       [f("y", T.FLOAT, ["N", 3, "H", "W"])], [helper.make_node("Add", ["x", "z"], ["y"])]),
        "vector_output": ([f("x", T.FLOAT, ["N", 3, "H", "W"])], [f("y", T.FLOAT, ["N", 3])],
                          [helper.make_node("ReduceMean", ["x"], ["y"], axes=[2, 3], keepdims=0)]),
        "nan_output": ([f("x", T.FLOAT, ["N", 3, "H", "W"])], [f("y", T.FLOAT, ["N", 3, "H", "W"])],
                       [helper.make_node("Log", ["x"], ["l"]), helper.make_node("Sqrt", ["l"], ["y"])]),
    }
    ins, outs, nodes = graphs[name]
    m = helper.make_model(helper.make_graph(nodes, name, ins, outs), opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, path)
    return path


@pytest.mark.parametrize("kind, words", [("nhwc", "does not run on a 1x3x"), ("uint8", "does not run on a 1x3x"),
                                         ("two_inputs", "does not run on a 1x3x"),
                                         ("vector_output", "returns shape [1, 3]")])
def test_model_of_another_contract_is_refused_once_up_front(tmp_path: Path, kind: str, words: str) -> None:
    model = _graph(kind, tmp_path / f"{kind}.onnx")
    d = tmp_path / "in"
    d.mkdir()
    for i in range(3):
        write_image(d / f"{i}.png", h.small_rgb().astype(np.float32) / 255)
    r = CliRunner().invoke(main, ["restore", str(d), "-o", str(tmp_path / "o"), "--model", str(model),
                                  "--backend", "ort"])
    assert r.exit_code == 2 and r.output.count("error:") == 1 and words in r.output, r.output


def test_model_that_outputs_nan_writes_nothing(tmp_path: Path) -> None:
    model = _graph("nan_output", tmp_path / "nan.onnx")
    img = tmp_path / "a.png"
    write_image(img, h.small_rgb().astype(np.float32) / 255)
    r = CliRunner().invoke(main, ["restore", str(img), "-o", str(tmp_path / "o"), "--model", str(model),
                                  "--backend", "ort"])
    assert r.exit_code == 1 and "NaN" in r.output and "0 written, 1 failed" in r.output
    assert not list((tmp_path / "o").iterdir())


def test_weights_given_to_an_onnx_backend_get_a_pointer(tmp_path: Path) -> None:
    img = tmp_path / "a.png"
    write_image(img, h.small_rgb().astype(np.float32) / 255)
    from ftrt.runtime.models import WEIGHTS_DIR

    r = CliRunner().invoke(main, ["restore", str(img), "-o", str(tmp_path / "o"), "--backend", "ort",
                                  "--model", str(WEIGHTS_DIR / "res-s.safetensors")])
    assert r.exit_code == 2 and "ftrt export" in r.output


SIDECARS = {
    "a_list": [],
    "a_string": "engine",
    "profiles_not_a_list": {"sidecar_version": 1, "profiles": {"min": 1}},
    "profile_of_strings": {"sidecar_version": 1, "profiles": [{"min": ["a"], "opt": [1], "max": [1]}]},
    "gpu_a_number": {"sidecar_version": 1, "gpu": 5},
}


@pytest.mark.parametrize("kind", sorted(SIDECARS))
def test_engine_sidecar_of_the_wrong_shape(tmp_path: Path, kind: str) -> None:
    from ftrt.engine.sidecar import EngineMismatch, read_sidecar, sidecar_path

    engine = tmp_path / "m.engine"
    engine.write_bytes(b"ftrt-test-plan")
    sidecar_path(engine).write_text(json.dumps(SIDECARS[kind]))
    with pytest.raises(EngineMismatch) as err:
        read_sidecar(engine)
    assert str(sidecar_path(engine)) in str(err.value)
    r = CliRunner().invoke(main, ["info", str(engine)])
    assert "Traceback" not in r.output and r.exception is None or isinstance(r.exception, SystemExit)
