from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from ftrt.cli import main
from ftrt.io import read_image, write_image


def _bad_batch(folder: Path, retina_png: Path) -> None:
    (folder / "cut.jpg").write_bytes(retina_png.read_bytes()[:300])
    (folder / "second.png").write_bytes(retina_png.read_bytes())


def test_degrade_cli_is_byte_reproducible(tmp_path: Path, retina_png: Path) -> None:
    runner = CliRunner()
    for out in ("a", "b"):
        r = runner.invoke(main, ["degrade", str(retina_png.parent), "-o", str(tmp_path / out), "--seed", "3"])
        assert r.exit_code == 0, r.output
    a, b = tmp_path / "a" / "retina.png", tmp_path / "b" / "retina.png"
    assert a.read_bytes() == b.read_bytes()
    params = json.loads((tmp_path / "a" / "params.json").read_text())
    assert params["seed"] == 3 and "retina.png" in params["images"]
    r = runner.invoke(main, ["degrade", str(retina_png), "-o", str(tmp_path / "c"), "--seed", "4"])
    assert (tmp_path / "c" / "retina.png").read_bytes() != a.read_bytes()


def test_degrade_batch_continues_past_a_bad_file(tmp_path: Path, retina_png: Path) -> None:
    _bad_batch(retina_png.parent, retina_png)
    before = {p.name: p.read_bytes() for p in retina_png.parent.iterdir()}
    r = CliRunner().invoke(main, ["degrade", str(retina_png.parent), "-o", str(tmp_path / "out"), "--json"])
    assert r.exit_code == 1
    records = [json.loads(line) for line in r.stdout.splitlines()]
    status = {Path(rec["input"]).name: rec["status"] for rec in records}
    assert status == {"cut.jpg": "error", "retina.png": "ok", "second.png": "ok"}
    err = next(rec["error"] for rec in records if rec["status"] == "error")
    assert "cut.jpg" in err and "\n" not in err
    assert {p.name: p.read_bytes() for p in retina_png.parent.iterdir()} == before


def test_output_folder_that_is_an_input_folder_is_refused(retina_png: Path) -> None:
    r = CliRunner().invoke(main, ["degrade", str(retina_png.parent), "-o", str(retina_png.parent)])
    assert r.exit_code == 2 and "is an input folder" in r.output


def test_enhance_and_evaluate_json(tmp_path: Path, retina_png: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["degrade", str(retina_png), "-o", str(tmp_path / "deg")]).exit_code == 0
    for method in ("clahe", "dcp"):
        r = runner.invoke(main, ["enhance", "--method", method, str(tmp_path / "deg" / "retina.png"),
                                 "-o", str(tmp_path / method)])
        assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["evaluate", "--pred", str(tmp_path / "deg"), "--ref", str(retina_png.parent), "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert set(report["mean"]) == {"psnr", "ssim"} and len(report["images"]) == 1
    row = report["images"][0]
    assert row["name"] == "retina" and 5 < row["psnr"] < 40 and 0 < row["ssim"] < 1
    same = runner.invoke(main, ["evaluate", "--pred", str(retina_png.parent), "--ref", str(retina_png.parent), "--json"])
    assert json.loads(same.stdout)["mean"]["ssim"] == 1.0


def test_evaluate_with_given_masks(tmp_path: Path, retina: np.ndarray) -> None:
    pred, ref, masks = (tmp_path / n for n in ("p", "r", "m"))
    write_image(ref / "01_test.png", retina)
    noisy = retina.copy()
    noisy[:, :128] = 0  # wrong only on the left half...
    write_image(pred / "01_test.png", noisy)
    m = np.zeros(retina.shape, np.float32)
    m[:, 128:] = 1  # ...which the given mask excludes
    write_image(masks / "01_test_mask.png", m)
    r = CliRunner().invoke(main, ["evaluate", "--pred", str(pred), "--ref", str(ref), "--mask", str(masks), "--json"])
    row = json.loads(r.stdout)["images"][0]
    assert row["mask"] == "given" and row["ssim"] == 1.0


def test_train_restorer_cli_tiny(tmp_path: Path, retina_png: Path) -> None:
    r = CliRunner().invoke(main, [
        "train", "restorer", "--data", str(retina_png.parent), "--out", str(tmp_path / "run"), "--steps", "2",
        "--batch-size", "1", "--crop", "32", "--set", "val_images=0", "--set", "workers=0", "--set", "max_side=96",
        "--no-progress"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "run" / "final.safetensors").exists()
    assert (tmp_path / "run" / "last" / "state.json").exists()
    r2 = CliRunner().invoke(main, ["train", "restorer", "--out", str(tmp_path / "x")])
    assert r2.exit_code == 2 and "no training data" in r2.output


def test_cli_as_a_real_subprocess(tmp_path: Path, retina_png: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "ftrt.cli", "degrade", str(retina_png), "-o", str(tmp_path / "o"),
                           "--kind", "cataract"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    img, depth = read_image(tmp_path / "o" / "retina.png")
    assert img.shape == (256, 256, 3) and depth == 8
    bad = subprocess.run([sys.executable, "-m", "ftrt.cli", "degrade", str(tmp_path / "nothing*.png"), "-o",
                          str(tmp_path / "o2")], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "no such file" in bad.stderr


def test_cli_backend_choices_match_the_runtime() -> None:
    from ftrt.cli import BACKEND_CHOICES
    from ftrt.runtime.backends import BACKENDS

    assert tuple(BACKEND_CHOICES) == BACKENDS


def test_cli_degrade_kinds_match_the_api() -> None:
    from ftrt.cli import DEGRADE_KINDS
    from ftrt.degrade import KINDS

    assert tuple(DEGRADE_KINDS) == KINDS
