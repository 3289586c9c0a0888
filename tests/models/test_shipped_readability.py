"""The shipped readability classifier: card, ONNX, `ftrt assess`, the restore gate, held-out targets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from ftrt.cli import main
from ftrt.onnx.metadata import get_metadata
from ftrt.io import read_image, write_image
from ftrt.models.pretrained import WEIGHTS_DIR

pytestmark = pytest.mark.skipif(not (WEIGHTS_DIR / "readability.onnx").exists(),
                                reason="no shipped readability classifier yet")


@pytest.fixture()
def mixed_folder(tmp_path: Path, retina: np.ndarray) -> Path:
    from skimage import data

    d = tmp_path / "camera"
    d.mkdir()
    write_image(d / "retina.png", retina)
    write_image(d / "astronaut.png", data.astronaut().astype(np.float32) / 255.0)
    return d


def test_card_and_onnx_agree() -> None:
    card = json.loads((WEIGHTS_DIR / "readability.json").read_text())
    meta = get_metadata(onnx.load(str(WEIGHTS_DIR / "readability.onnx")))
    assert meta["card_id"] == card["id"] and meta["model"] == "readability"
    assert set(card["label_rules"]) >= {"drimdb/Good", "drimdb/Bad", "drimdb/Outlier", "csdi"}


def test_assess_astronaut_is_not_a_fundus_and_retina_is(mixed_folder: Path) -> None:
    """A real subprocess, as a script would call it: one JSON object per line."""
    proc = subprocess.run([sys.executable, "-m", "ftrt.cli", "assess", str(mixed_folder), "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = {Path(r["file"]).stem: r for r in map(json.loads, proc.stdout.splitlines())}
    assert set(rows["retina"]) >= {"file", "valid", "macula", "disc", "retina"}
    assert rows["astronaut"]["valid"] < 0.5
    assert rows["retina"]["valid"] >= 0.5


@pytest.mark.skipif(not (WEIGHTS_DIR / "res-s.onnx").exists(), reason="no shipped res-s yet")
def test_restore_gate_skips_non_fundus_and_reports_both_scores(mixed_folder: Path, tmp_path: Path) -> None:
    before = {p.name: p.read_bytes() for p in mixed_folder.iterdir()}
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["restore", str(mixed_folder), "-o", str(out), "--gate", "--skip-invalid",
                                    "--json"])
    assert res.exit_code == 0, res.output
    rows = {Path(r["input"]).stem: r for r in map(json.loads, res.output.splitlines())}
    assert rows["astronaut"]["status"] == "skipped" and "not a fundus" in rows["astronaut"]["reason"]
    assert not (out / "astronaut.png").exists()
    r = rows["retina"]
    assert r["status"] == "ok" and {"readability_before", "readability_after", "became_readable"} <= set(r)
    assert {"gate_before", "gate_after"} <= set(r["ms"])
    assert {p.name: p.read_bytes() for p in mixed_folder.iterdir()} == before


@pytest.mark.data
def test_heldout_targets_through_the_runtime(shared_data: Path) -> None:
    """Re-score the card's held-out DRIMDB images with the shipped ONNX on the torch-free runtime."""
    from ftrt.metrics import binary_report, roc_auc
    from ftrt.runtime import open_backend
    from ftrt.runtime.readability import ReadabilityScorer

    card = json.loads((WEIGHTS_DIR / "readability.json").read_text())
    names = [n for n in card["heldout"]["images"] if n.startswith("drimdb/")]
    assert len(names) >= 40
    with open_backend("ort", "readability", threads=2) as be:
        scorer = ReadabilityScorer(be)
        assert scorer.thresholds == card["thresholds"]  # the fitted thresholds travel in the ONNX metadata
        groups, results = [], []
        for n in names:
            group, file = n.rsplit("/", 1)
            img, _ = read_image(shared_data / "drimdb" / group.split("/")[1] / file)
            groups.append(group)
            results.append(scorer.score(img))
    good = np.array([g == "drimdb/Good" for g in groups])
    outlier = np.array([g == "drimdb/Outlier" for g in groups])
    readable = np.array([float(r.readable) for r in results])
    assert binary_report(good, readable)["balanced_accuracy"] >= 0.90
    assert roc_auc(~outlier, np.array([r.probs["valid"] for r in results])) >= 0.95
