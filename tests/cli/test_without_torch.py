"""Every command that promises to work without PyTorch does, in a process where ``import torch`` fails; the
commands that need it end with one line naming what to install (exit 1), never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ftrt.runtime.models import WEIGHTS_DIR

# Runs the CLI with torch (and safetensors, which only torch code reads) made unimportable, as in the
# runtime-only install (`pip install ftrt`).
RUNNER = """
import sys
class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision", "safetensors"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, _NoTorch())
from ftrt.cli import main
main()
"""


def ftrt(*args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", RUNNER, *args], capture_output=True, text=True, timeout=timeout)


def test_the_blocker_blocks() -> None:
    proc = subprocess.run([sys.executable, "-c", RUNNER.replace("from ftrt.cli import main\nmain()", "import torch")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "No module named 'torch'" in proc.stderr


def test_runtime_commands_work_without_torch(retina_png: Path, tmp_path: Path) -> None:
    model = str(WEIGHTS_DIR / "res-s.onnx")
    steps = {
        "restore": ftrt("restore", str(retina_png), "-o", str(tmp_path / "r"), "--backend", "ort", "--gate",
                        "--max-side", "128", "--json"),
        "assess": ftrt("assess", str(retina_png), "--json"),
        "info": ftrt("info", model, "--json"),
        "info-readability": ftrt("info", str(WEIGHTS_DIR / "readability.onnx")),
        "profile": ftrt("profile", model, "--backend", "ort", "--shapes", "64x64", "--iters", "2", "--warmup", "1",
                        "--threads", "1", "--baseline", "ort", "--json"),
        "convert": ftrt("convert", model, "--fp16", "-o", str(tmp_path / "m.fp16.onnx"), "--images",
                        str(retina_png), "--json"),
        "watch": ftrt("watch", str(retina_png.parent), "-o", str(tmp_path / "w"), "--once", "--poll", "0.2",
                      "--max-side", "128"),
    }
    for name, proc in steps.items():
        assert proc.returncode == 0, f"{name}: {proc.stderr}"
        assert "Traceback" not in proc.stderr, f"{name}: {proc.stderr}"
    rec = json.loads(steps["restore"].stdout.strip().splitlines()[0])
    assert rec["status"] == "ok" and "readability_after" in rec
    assert json.loads(steps["profile"].stdout)["results"][0]["ms"]["median"] > 0
    assert (tmp_path / "m.fp16.onnx").is_file() and (tmp_path / "w" / "retina.png.restored.png").is_file()


@pytest.mark.slow
def test_calibrate_works_without_torch(fundus_dir: Path, tmp_path: Path) -> None:
    proc = ftrt("calibrate", str(WEIGHTS_DIR / "res-s.onnx"), "--images", str(fundus_dir), "-o",
                str(tmp_path / "m.int8.onnx"), "--num", "2", "--shape", "64x64", "--eval-num", "1", "--keep",
                "auto", "--quantizer", "ftrt", "--min-psnr", "0", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])["precision"] == "int8"


@pytest.mark.parametrize("args", [
    ["export", "--model", "res-s", "-o", "{tmp}/m.onnx"],
    ["train", "restorer", "--data", "{tmp}", "--out", "{tmp}/run", "--steps", "1"],
    ["degrade", "{img}", "-o", "{tmp}/d", "--kind", "syn"],
    ["restore", "{img}", "-o", "{tmp}/t", "--backend", "torch"],
])
def test_torch_commands_say_what_to_install(args: list[str], retina_png: Path, tmp_path: Path) -> None:
    proc = ftrt(*[a.format(tmp=tmp_path, img=retina_png) for a in args])
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "needs torch" in lines[0] and "pip install torch==2.13.0" in lines[0]
