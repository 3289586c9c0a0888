"""`ftrt serve` for real: Triton on loopback, photographs sent over http and grpc, outputs equal to local ones.

Needs a serving environment (nvidia-pytriton + ftrt, numpy < 2: docs/serving.md) named by $FTRT_SERVING_ENV or
at .venv-serving; skipped with the reason otherwise.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ftrt.cli import main
from ftrt.io import write_image
from ftrt.serving.server import free_ports

ROOT = Path(__file__).resolve().parents[2]


def _serving_env() -> Path | None:
    env = os.environ.get("FTRT_SERVING_ENV") or str(ROOT / ".venv-serving")
    py = Path(env) / "bin" / "python"
    if not py.exists():
        return None
    ok = subprocess.run([str(py), "-c", "import pytriton, ftrt"], capture_output=True, timeout=60)
    return Path(env) if ok.returncode == 0 else None


SERVING_ENV = _serving_env()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    SERVING_ENV is None, reason="no serving environment (nvidia-pytriton and ftrt): set FTRT_SERVING_ENV or create "
                                ".venv-serving as docs/serving.md says")]


def _start_server(model: Path, ports: list[int], *extra: str) -> subprocess.Popen:
    from ftrt.serving.server import start_serve

    return start_serve(["--model", str(model), "--serving-env", str(SERVING_ENV), "--grpc-port", str(ports[1]),
                        "--metrics-port", str(ports[2]), *extra], ports[0], timeout=240)


def _stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return err or ""


def test_http_and_grpc_results_equal_local_and_bad_requests_do_not_stop_it(tmp_path: Path, random_onnx: Path,
                                                                            retina: np.ndarray) -> None:
    d = tmp_path / "in"
    d.mkdir()
    for i in range(3):
        write_image(d / f"p{i}.png", np.clip(retina[: 180 + 20 * i, : 200 + 10 * i] * (0.8 + 0.1 * i), 0, 1))
    (d / "tiny.png").write_bytes(b"")  # a bad file among them
    write_image(d / "small.png", retina[:20, :20])  # refused by the server: too small
    ports = free_ports(3)
    proc = _start_server(random_onnx, ports)
    try:
        local = CliRunner().invoke(main, ["restore", str(d), "-o", str(tmp_path / "local"), "--model", str(random_onnx),
                                          "--backend", "ort", "--gate"])
        results = {}
        for scheme, port in (("http", ports[0]), ("grpc", ports[1])):
            r = CliRunner().invoke(main, ["restore", str(d), "-o", str(tmp_path / scheme), "--server",
                                          f"{scheme}://127.0.0.1:{port}", "--json"])
            results[scheme] = r
            assert r.exit_code == 1  # the two bad files, reported; the rest written
            recs = [json.loads(x) for x in r.output.splitlines() if x.startswith("{")]
            assert sorted(x["status"] for x in recs) == ["error", "error", "ok", "ok", "ok"]
            assert any("at least 32 px" in (x.get("error") or "") for x in recs)
        for name in ("p0.png", "p1.png", "p2.png"):
            a = (tmp_path / "local" / name).read_bytes()
            assert (tmp_path / "http" / name).read_bytes() == a and (tmp_path / "grpc" / name).read_bytes() == a
        assert local.exit_code == 1
    finally:
        err = _stop(proc)
    assert "grpc://127.0.0.1" in err and "stopped" in err


def test_watch_through_a_restarting_server_loses_nothing(tmp_path: Path, random_onnx: Path,
                                                         retina: np.ndarray) -> None:
    in_dir, out_dir = tmp_path / "cam", tmp_path / "out"
    in_dir.mkdir()
    ports = free_ports(3)
    proc = _start_server(random_onnx, ports)
    watch = subprocess.Popen([sys.executable, "-m", "ftrt.cli", "watch", str(in_dir), "-o", str(out_dir), "--server",
                              f"grpc://127.0.0.1:{ports[1]}", "--poll", "0.3", "--server-wait", "2"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for i in range(3):
            write_image(in_dir / f"a{i}.png", retina[:160, :160])
        deadline = time.time() + 120
        while time.time() < deadline and len(list(out_dir.glob("*.restored.png"))) < 3:
            time.sleep(0.2)
        _stop(proc)  # the server goes away ...
        for i in range(3):
            write_image(in_dir / f"b{i}.png", retina[:160, :160])  # ... while captures keep coming
        time.sleep(4)
        proc = _start_server(random_onnx, ports)  # ... and comes back
        deadline = time.time() + 180
        while time.time() < deadline and len(list(out_dir.glob("*.restored.png"))) < 6:
            time.sleep(0.3)
    finally:
        watch.send_signal(signal.SIGTERM)
        _, werr = watch.communicate(timeout=60)
        _stop(proc)
    outs = sorted(p.name for p in out_dir.glob("*.restored.png"))
    assert outs == sorted(f"{p}{i}.png.restored.png" for p in "ab" for i in range(3)), werr
    assert "will retry" in werr or "not answering" in werr


def test_bls_layout_calls_the_raw_networks_and_matches_local(tmp_path: Path, random_onnx: Path,
                                                             retina: np.ndarray) -> None:
    """fundus_restore with the network (and the gate) called through BLS, as on a production server; here the
    raw networks are served by ftrt's Python model, the one backend nvidia-pytriton has."""
    d = tmp_path / "in"
    d.mkdir()
    for i in range(2):
        write_image(d / f"p{i}.png", np.clip(retina[: 190 + 30 * i, : 210] * (0.7 + 0.2 * i), 0, 1))
    ports = free_ports(3)
    proc = _start_server(random_onnx, ports, "--network", "bls", "--raw-backend", "python")
    try:
        local = CliRunner().invoke(main, ["restore", str(d), "-o", str(tmp_path / "local"), "--model", str(random_onnx),
                                          "--backend", "ort", "--gate", "--json"])
        remote = CliRunner().invoke(main, ["restore", str(d), "-o", str(tmp_path / "bls"), "--server",
                                           f"grpc://127.0.0.1:{ports[1]}", "--json"])
        assert local.exit_code == 0 and remote.exit_code == 0, remote.output
        recs = [json.loads(x) for x in remote.output.splitlines() if x.startswith("{")]
        local_recs = {Path(r["input"]).name: r for r in map(json.loads, local.output.splitlines())}
        for r in recs:
            name = Path(r["input"]).name
            assert (tmp_path / "bls" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()
            assert r["readability_before"] == local_recs[name]["readability_before"]
    finally:
        _stop(proc)
