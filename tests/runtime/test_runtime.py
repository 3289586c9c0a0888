from __future__ import annotations

import json
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from ftrt.cli import main
from ftrt.io import read_image, write_image
from ftrt.metrics import psnr
from ftrt.runtime import BackendUnavailable, FundusPipeline, PipelineConfig, open_backend
from ftrt.runtime.tiles import run_tiled, tile_starts


def test_correction_fades_out_at_the_fov_rim(random_onnx: Path, retina: np.ndarray) -> None:
    """The restorer's change is kept in full inside the FOV, and none of it at the FOV's edge (where a
    sharpening network overshoots the edge step into a bright ring)."""
    from ftrt.runtime.pipeline import rim_fade

    assert rim_fade(np.ones((64, 64), bool), 0.02) is None  # no FOV edge: nothing to fade
    assert rim_fade(np.zeros((64, 64), bool) | True, 0.0) is None
    with open_backend("ort", str(random_onnx), threads=2) as be:
        faded = FundusPipeline(be, PipelineConfig(tile=None, rim=0.03)).restore(retina)
        full = FundusPipeline(be, PipelineConfig(tile=None, rim=0.0)).restore(retina)
    m = faded.mask.astype(np.uint8)
    dist = cv2.distanceTransform(m, cv2.DIST_L2, 5)
    width = 0.03 * min(int(v) for v in np.ptp(np.nonzero(m), axis=1) + 1)
    edge, inner = (dist > 0) & (dist <= 1), dist > width + 1
    src = retina * faded.mask[..., None]
    # At most 1 px inside the edge the fade is about 1 / width of the full change (width a few px here).
    assert np.abs(faded.image[edge] - src[edge]).mean() < np.abs(full.image[edge] - src[edge]).mean() / 3
    np.testing.assert_array_equal(faded.image[inner], full.image[inner])


def test_pipeline_on_skimage_retina(random_onnx: Path, retina: np.ndarray) -> None:
    with open_backend("ort", str(random_onnx), threads=2) as be:
        res = FundusPipeline(be, PipelineConfig(tile=None)).restore(retina)
    assert res.image.shape == retina.shape and res.image.dtype == np.float32
    assert 0 <= res.image.min() and res.image.max() <= 1
    assert not res.image[~res.mask].any(), "outside the FOV must be zero"
    inside = psnr(res.image, retina * res.mask[..., None], res.mask)
    assert 10 < inside < 60, "the random head changes the image, but not into noise"
    assert set(res.ms) == {"preprocess", "infer", "postprocess"}


def test_tiled_equals_whole_image(random_onnx: Path, retina_full: np.ndarray) -> None:
    img = cv2.resize(retina_full, (320, 288), interpolation=cv2.INTER_AREA)
    with open_backend("ort", str(random_onnx), threads=2) as be:
        whole = FundusPipeline(be, PipelineConfig(tile=None)).restore(img)
        tiled = FundusPipeline(be, PipelineConfig(tile=192, overlap=64)).restore(img)
    assert tiled.info["tiled"] and not whole.info["tiled"]
    assert psnr(tiled.image, whole.image, whole.mask) > 40


def test_tile_geometry() -> None:
    assert tile_starts(100, 128, 16) == [0]
    starts = tile_starts(1000, 256, 64)
    assert starts[0] == 0 and starts[-1] == 1000 - 256
    assert all(b - a <= 256 - 64 for a, b in zip(starts, starts[1:]))
    img = np.random.default_rng(0).uniform(size=(300, 217, 3)).astype(np.float32)
    assert np.allclose(run_tiled(img, lambda t: t * 2, 64, 16), img * 2, atol=1e-6)


def test_max_side_keeps_native_resolution(random_onnx: Path, retina_full: np.ndarray) -> None:
    img = cv2.resize(retina_full, (512, 512), interpolation=cv2.INTER_AREA)
    with open_backend("ort", str(random_onnx)) as be:
        res = FundusPipeline(be, PipelineConfig(max_side=256)).restore(img)
    assert res.image.shape == img.shape and res.info["work_shape"][0] <= 256


def test_missing_provider_is_reported(random_onnx: Path) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("CUDA provider installed here")
    with pytest.raises(BackendUnavailable, match="CUDAExecutionProvider"):
        open_backend("ort-cuda", str(random_onnx))


def _png_header_only(w: int, h: int) -> bytes:
    ihdr = w.to_bytes(4, "big") + h.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + len(ihdr).to_bytes(4, "big") + chunk + zlib.crc32(chunk).to_bytes(4, "big")


@pytest.fixture()
def bad_folder(tmp_path: Path, retina: np.ndarray) -> Path:
    d = tmp_path / "camera"
    d.mkdir()
    (d / "notes.txt").write_text("not an image")
    write_image(d / "good.jpg", retina)
    (d / "truncated.jpg").write_bytes((d / "good.jpg").read_bytes()[:2000])
    cv2.imwrite(str(d / "tiny.png"), np.full((10, 10, 3), 128, np.uint8))
    write_image(d / "deep.png", retina, depth=16)
    cv2.imwrite(str(d / "grey.jpg"), (cv2.cvtColor(retina, cv2.COLOR_RGB2GRAY) * 255).astype(np.uint8))
    (d / "huge.png").write_bytes(_png_header_only(30000, 30000))
    return d


def test_restore_bad_input_folder(bad_folder: Path, random_onnx: Path, tmp_path: Path) -> None:
    before = {p.name: p.read_bytes() for p in bad_folder.iterdir()}
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["restore", str(bad_folder), "-o", str(out), "--model", str(random_onnx), "--json"])
    assert r.exit_code == 1, r.output
    recs = {Path(x["input"]).name: x for x in map(json.loads, r.stdout.splitlines())}
    assert {n: x["status"] for n, x in recs.items()} == {
        "notes.txt": "skipped", "good.jpg": "ok", "truncated.jpg": "error", "tiny.png": "error",
        "deep.png": "ok", "grey.jpg": "ok", "huge.png": "error"}
    assert "30000x30000" in recs["huge.png"]["error"]
    assert "at least 32 px" in recs["tiny.png"]["error"]
    for x in recs.values():
        assert x["error"] is None or "\n" not in x["error"]
    assert {p.name: p.read_bytes() for p in bad_folder.iterdir()} == before, "inputs must never change"
    deep, depth = read_image(out / "deep.png")
    assert depth == 16 and deep.shape == (256, 256, 3)
    assert set(recs["good.jpg"]["ms"]) >= {"read", "preprocess", "infer", "postprocess", "write"}
    assert not list(out.glob(".*.tmp")), "no temp files left behind"


def test_restore_side_by_side(retina_png: Path, random_onnx: Path, tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["restore", str(retina_png), "-o", str(tmp_path / "o"), "--model", str(random_onnx),
                                  "--side-by-side"])
    assert r.exit_code == 0, r.output
    cmp_img, _ = read_image(tmp_path / "o" / "retina_compare.png")
    assert cmp_img.shape == (256, 512, 3)


BLOCK_TORCH = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this test")
sys.meta_path.insert(0, _Block())
"""


def test_runtime_needs_no_torch(random_onnx: Path, retina_png: Path, tmp_path: Path) -> None:
    script = BLOCK_TORCH + f"""
from ftrt.cli import main
import ftrt.runtime
try:
    main(["restore", {str(retina_png)!r}, "-o", {str(tmp_path / "o")!r}, "--model", {str(random_onnx)!r}, "--json"])
except SystemExit as e:
    assert not e.code, e.code
assert "torch" not in sys.modules
print("TORCH-FREE-OK")
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "TORCH-FREE-OK" in proc.stdout
    rec = json.loads(proc.stdout.splitlines()[0])
    assert rec["status"] == "ok" and Path(rec["output"]).exists()


def test_restore_as_real_subprocess(random_onnx: Path, retina_png: Path, tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "ftrt.cli", "restore", str(retina_png), "-o", str(tmp_path / "o"),
                           "--model", str(random_onnx)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "1 written, 0 failed" in proc.stdout


def _with_metadata(src: Path, dst: Path, **meta: str) -> Path:
    import onnx

    m = onnx.load(str(src))
    for k, v in meta.items():
        m.metadata_props.add(key=k, value=v)
    onnx.save(m, str(dst))
    return dst


def test_strength_scales_the_correction(random_onnx: Path, retina: np.ndarray, tmp_path: Path) -> None:
    """0 gives the input back, 1 the model as trained, 2 twice its change (where nothing clips); the model's
    metadata sets the default and the caller's value overrides it."""
    with open_backend("ort", str(random_onnx), threads=2) as be:
        runs = {s: FundusPipeline(be, PipelineConfig(tile=None, rim=0.0, strength=s)).restore(retina)
                for s in (0.0, 1.0, 2.0)}
        default = FundusPipeline(be, PipelineConfig(tile=None, rim=0.0)).restore(retina)
    src = retina * runs[1.0].mask[..., None]
    np.testing.assert_allclose(runs[0.0].image, src, atol=1e-6)
    np.testing.assert_array_equal(default.image, runs[1.0].image)
    d1, d2 = runs[1.0].image - src, runs[2.0].image - src
    free = (runs[2.0].image > 0.01) & (runs[2.0].image < 0.99) & runs[1.0].mask[..., None]
    assert np.abs(d1[free]).mean() > 1e-3, "the random head must change the photograph for this test to mean much"
    np.testing.assert_allclose(d2[free], 2 * d1[free], atol=1e-5)
    assert runs[2.0].info["strength"] == 2.0 and "strength" not in runs[1.0].info

    half = _with_metadata(random_onnx, tmp_path / "half.onnx", strength="0.5")
    with open_backend("ort", str(half), threads=2) as be:
        meta = FundusPipeline(be, PipelineConfig(tile=None, rim=0.0)).restore(retina)
        override = FundusPipeline(be, PipelineConfig(tile=None, rim=0.0, strength=1.0)).restore(retina)
    inside = (runs[1.0].image > 0.01) & (runs[1.0].image < 0.99) & runs[1.0].mask[..., None]
    np.testing.assert_allclose((meta.image - src)[inside], 0.5 * d1[inside], atol=1e-5)
    np.testing.assert_array_equal(override.image, runs[1.0].image)


@pytest.mark.parametrize("value", ["9", "-1", "nan", "strong"])
def test_bad_strength_in_a_model_is_refused_naming_the_file(random_onnx: Path, tmp_path: Path, value: str) -> None:
    from ftrt.runtime import open_pipeline

    bad = _with_metadata(random_onnx, tmp_path / "bad.onnx", strength=value)
    with pytest.raises(ValueError, match=r"bad\.onnx: model metadata strength"):
        open_pipeline(str(bad), "ort", threads=1)


def test_strength_out_of_range_is_refused(random_onnx: Path) -> None:
    with open_backend("ort", str(random_onnx), threads=1) as be:
        with pytest.raises(ValueError, match="strength 5"):
            FundusPipeline(be, PipelineConfig(strength=5.0))


def test_restore_cli_strength(random_onnx: Path, retina_png: Path, tmp_path: Path) -> None:
    """--strength 0 writes the photograph back (inside its FOV); a model whose metadata strength is not a number
    is one error line naming the file, before any photograph is touched."""
    out = tmp_path / "zero"
    r = CliRunner().invoke(main, ["restore", str(retina_png), "-o", str(out), "--model", str(random_onnx),
                                  "--strength", "0", "--json"])
    assert r.exit_code == 0, r.output
    src, _ = read_image(retina_png)
    got, _ = read_image(out / "retina.png")
    inside = got.sum(axis=2) > 0
    assert inside.mean() > 0.5 and np.abs(got[inside] - src[inside]).max() <= 1.5 / 255
    bad = _with_metadata(random_onnx, tmp_path / "bad.onnx", strength="strong")
    r = CliRunner().invoke(main, ["restore", str(retina_png), "-o", str(tmp_path / "b"), "--model", str(bad)])
    assert r.exit_code == 2 and r.output.startswith(f"error: {bad}") and r.output.count("\n") == 1, r.output
    assert not (tmp_path / "b").exists() or not list((tmp_path / "b").iterdir())


def test_restore_cli_bits(random_onnx: Path, retina_png: Path, tmp_path: Path) -> None:
    """--bits 16 writes a 16-bit PNG from an 8-bit photograph, holding the restoration below one grey level that
    the 8-bit file rounds away (the same image once rounded); --bits 8 writes 8 bits from a 16-bit source; asking
    for both --bits and a derived DICOM is one error line before anything is written."""
    import cv2

    runs = {}
    for bits in ("source", "16"):
        r = CliRunner().invoke(main, ["restore", str(retina_png), "-o", str(tmp_path / bits), "--model",
                                      str(random_onnx), "--bits", bits, "--json"])
        assert r.exit_code == 0, r.output
        runs[bits] = cv2.imread(str(tmp_path / bits / "retina.png"), cv2.IMREAD_UNCHANGED)
    assert runs["source"].dtype == np.uint8 and runs["16"].dtype == np.uint16
    deep = runs["16"].astype(np.float64) / 65535
    assert np.abs(np.rint(deep * 255) - runs["source"]).max() <= 1
    assert (np.abs(deep * 255 - np.rint(deep * 255)) > 0.1).mean() > 0.2  # detail between the 8-bit levels
    r = CliRunner().invoke(main, ["restore", str(tmp_path / "16" / "retina.png"), "-o", str(tmp_path / "eight"),
                                  "--model", str(random_onnx), "--bits", "8"])
    assert r.exit_code == 0, r.output
    assert cv2.imread(str(tmp_path / "eight" / "retina.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint8
    r = CliRunner().invoke(main, ["restore", str(retina_png), "-o", str(tmp_path / "d"), "--model", str(random_onnx),
                                  "--bits", "16", "--dicom-out", "dicom"])
    assert r.exit_code == 2 and r.output.startswith("error: --bits") and r.output.count("\n") == 1, r.output
    assert not (tmp_path / "d").exists()
