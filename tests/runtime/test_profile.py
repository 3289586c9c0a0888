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
    # The ORT cell says how the graph ran: the CPU layout loader's note for this CPU, whichever that is.
    from ftrt.runtime.loaders import CpuLayoutLoader
    from ftrt.runtime.models import resolve_model

    assert by["ort"]["graph"] == CpuLayoutLoader(resolve_model(model, "onnx"))().note
    assert by["torch"]["graph"] == ""
    assert (tmp_path / "p.csv").read_text().startswith("model,backend,precision")


def test_end_to_end_stages(random_onnx: Path, retina_png: Path) -> None:
    from ftrt.profile import end_to_end

    e = end_to_end(str(random_onnx), "ort", [str(retina_png)], threads=1)
    # CPU: no copies, the whole inference is compute.
    assert e["images"] == 1 and set(e["stages_ms"]) == {"decode", "preprocess", "compute", "postprocess", "encode"}


def test_infer_split_by_device_stages() -> None:
    from ftrt.profile import split_infer

    ms = {"preprocess": 2.0, "infer": 10.0, "postprocess": 3.0}
    out = split_infer(ms, {"h2d": 1.0, "compute": 6.0, "d2h": 1.5})
    assert out == {"preprocess": 2.0, "postprocess": 3.0, "h2d": 1.0, "compute": 6.0, "d2h": 1.5, "infer_host": 1.5}


def test_device_split_and_gpu_memory_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    """A GPU backend's per-run stage times become per-stage summaries of the timed runs only, and its
    memory figure is carried; the table gets the device-side section."""
    import ftrt.runtime as rt
    from ftrt.profile import profile_cell, run_profile, to_markdown
    from ftrt.runtime.backends.base import Backend, BackendInfo, TensorSpec

    class FakeGpu(Backend):
        timing = "cuda events"

        def __init__(self) -> None:
            self.info = BackendInfo(name="trt", device="cuda:0", precision="fp16")
            self.n = 0

        def open(self) -> "FakeGpu":
            return self

        @property
        def input_spec(self) -> TensorSpec:
            return TensorSpec("image", ("batch", 3, "height", "width"), "tensor(float)")

        def run(self, batch: np.ndarray) -> np.ndarray:
            self.n += 1
            # Warm-up runs are slow (first launch); timed ones take 1 + 4 + 2 ms.
            self.last_timing = {"h2d": 1.0 if self.n > 2 else 50.0, "compute": 4.0, "d2h": 2.0}
            return batch

        def gpu_memory_mb(self) -> float | None:
            return 321.0

    monkeypatch.setattr(rt, "open_backend", lambda *a, **k: FakeGpu())
    cell = profile_cell("trt", "m.engine", (32, 32), 1, warmup=2, iters=5)
    assert cell.timing == "cuda events" and cell.gpu_memory_mb == 321.0
    assert cell.device_ms is not None and cell.device_ms["h2d"]["max"] == 1.0  # warm-up excluded
    assert cell.device_ms["compute"]["median"] == 4.0
    text = to_markdown(run_profile(["m.engine"], ["trt"], [(32, 32)], warmup=1, iters=3, baseline="trt"))
    assert "Device-side split" in text and "| cuda events | 1.00 | 4.00 | 2.00 | 321 |" in text


def test_gpu_memory_from_nvidia_smi_lines() -> None:
    from ftrt.profile import parse_compute_apps

    text = "1234, 500\n999, 70\n1234, 12\n"
    assert parse_compute_apps(text, 1234) == 512.0 and parse_compute_apps(text, 5) is None
