"""`ftrt profile`: statistics, the report schema, a real ORT run, and absent backends as rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ftrt.cli import main
from ftrt.profile import run_profile, summarize, to_csv, to_markdown


def test_summary_statistics_on_known_samples() -> None:
    samples = list(range(1, 101))  # 1..100 ms
    s = summarize([float(v) for v in samples])
    assert s["min"] == 1 and s["max"] == 100 and s["median"] == 50.5 and s["mean"] == 50.5
    assert s["p90"] == pytest.approx(np.percentile(samples, 90)) and s["p99"] == pytest.approx(99.01)
    assert s["std"] == pytest.approx(np.std(samples, ddof=1), rel=1e-4)
    assert summarize([7.0])["std"] == 0.0
    with pytest.raises(ValueError):
        summarize([])


def test_report_schema_ratios_and_unavailable_backends(random_onnx: Path) -> None:
    report = run_profile([str(random_onnx)], ["ort", "ort-cuda", "trt"], [(64, 64), (96, 80)], warmup=1, iters=3,
                         baseline="ort", threads=1)
    assert set(report) >= {"machine", "results"} and report["machine"]["cores"] >= 1
    assert report["machine"]["libraries"]["onnxruntime"]
    rows = report["results"]
    assert len(rows) == 6
    ok = [r for r in rows if r["backend"] == "ort"]
    assert [r["shape"] for r in ok] == ["64x64", "96x80"]
    for r in ok:
        assert set(r["ms"]) == {"min", "mean", "median", "p90", "p95", "p99", "max", "std"}
        assert r["ms"]["min"] <= r["ms"]["median"] <= r["ms"]["max"]
        assert r["ratio_to_baseline"] == 1.0 and r["throughput_ips"] > 0 and r["batch"] == 1
    missing = [r for r in rows if r["backend"] != "ort"]
    assert all(r["ms"] is None and r["error"].startswith("unavailable") for r in missing)
    json.dumps(report)
    assert "unavailable" in to_markdown(report) and to_csv(report).count("\n") == 7


def test_cli_profile_torch_vs_ort_json(random_onnx: Path, tmp_path: Path) -> None:
    """A short real profile of res-s on both CPU backends, as a script would consume it."""
    from ftrt.models.pretrained import WEIGHTS_DIR

    model = "res-s" if (WEIGHTS_DIR / "res-s.onnx").exists() else str(random_onnx)
    res = CliRunner().invoke(main, ["profile", model, "--backend", "torch,ort", "--shapes", "64x64", "--iters", "3",
                                    "--warmup", "1", "--threads", "1", "--json", "--csv", str(tmp_path / "p.csv")])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    by = {r["backend"]: r for r in report["results"]}
    assert by["ort"]["ms"]["median"] > 0
    if model == "res-s":
        assert by["torch"]["ratio_to_baseline"] == 1.0 and by["ort"]["ratio_to_baseline"] > 0
    assert (tmp_path / "p.csv").read_text().startswith("model,backend,precision")


def test_end_to_end_stages(random_onnx: Path, retina_png: Path) -> None:
    from ftrt.profile import end_to_end

    e = end_to_end(str(random_onnx), "ort", [str(retina_png)], threads=1)
    assert e["images"] == 1 and {"decode", "preprocess", "infer", "postprocess", "encode"} <= set(e["stages_ms"])
