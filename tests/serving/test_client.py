"""The camera-side client without a server: bad URLs and an unreachable server are one line, and transient."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ftrt.cli import main
from ftrt.io import write_image
from ftrt.serving.server import free_ports

pytest.importorskip("tritonclient.http", reason="the serving extra (tritonclient) is not installed")


def test_unreachable_server_is_one_line(tmp_path: Path, retina: np.ndarray) -> None:
    src = write_image(tmp_path / "a.png", retina)
    port = free_ports(1)[0]
    r = CliRunner().invoke(main, ["restore", str(src), "-o", str(tmp_path / "o"), "--server",
                                  f"http://127.0.0.1:{port}", "--server-wait", "1", "--json"])
    assert r.exit_code == 1
    rec = json.loads([x for x in r.output.splitlines() if x.startswith("{")][0])
    assert "unreachable" in rec["error"] and rec.get("transient") is True


@pytest.mark.parametrize("url", ["ftp://host:1", "http://", "grpc://:8001"])
def test_bad_server_url_is_a_usage_error(tmp_path: Path, retina: np.ndarray, url: str) -> None:
    src = write_image(tmp_path / "a.png", retina)
    r = CliRunner().invoke(main, ["restore", str(src), "-o", str(tmp_path / "o"), "--server", url])
    assert r.exit_code == 2 and "HOST:PORT" in r.output


def test_a_model_being_loaded_or_unloaded_is_transient_a_missing_one_is_not() -> None:
    """Triton's answers while a server starts or stops (the restart case of benchmarks/serving.py lost
    photographs before this was retried) against a server that lacks the model or refuses the request."""
    from ftrt.serving.client import _unreachable

    class InferenceServerException(Exception):
        pass

    assert _unreachable(InferenceServerException("Request for unknown model: 'fundus_restore' has no available "
                                                 "versions"))
    assert _unreachable(InferenceServerException("[StatusCode.UNAVAILABLE] Server is stopping"))
    assert not _unreachable(InferenceServerException("Request for unknown model: 'fundus_restore' is not found"))
    assert not _unreachable(InferenceServerException("IMAGE must be UINT8, got float32"))
