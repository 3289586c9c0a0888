"""Nonsensical options are usage errors (exit 2) before any work, never a traceback or a silent default."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ftrt.cli import main
from ftrt.io import write_image
from tests.adversarial import hostile as h

CASES = [
    (["restore", "{img}", "-o", "{out}", "--tile", "1"], "--tile"),
    (["restore", "{img}", "-o", "{out}", "--tile", "-3"], "--tile"),
    (["restore", "{img}", "-o", "{out}", "--max-side", "-5"], "--max-side"),
    (["restore", "{img}", "-o", "{out}", "--max-side", "5"], "--max-side"),
    (["restore", "{img}", "-o", "{out}", "--threads", "0"], "--threads"),
    (["watch", "{dir}", "-o", "{out}", "--poll", "-1", "--once"], "--poll"),
    (["watch", "{dir}", "-o", "{out}", "--poll", "0", "--once"], "--poll"),
    (["watch", "{dir}", "-o", "{out}", "--max-side", "-1", "--once"], "--max-side"),
    (["assess", "{img}", "--threshold", "2"], "--threshold"),
    (["assess", "{img}", "--threshold", "-0.1"], "--threshold"),
    (["profile", "res-s", "--batch", "0"], "--batch"),
    (["profile", "res-s", "--iters", "0"], "--iters"),
]


@pytest.mark.parametrize("args, option", CASES, ids=[" ".join(a[2:] if a[0] != "assess" else a[1:]) for a, _ in CASES])
def test_bad_option_values_are_usage_errors(tmp_path: Path, args: list[str], option: str) -> None:
    img = tmp_path / "a.png"
    write_image(img, h.small_rgb().astype(np.float32) / 255)
    subs = {"{img}": str(img), "{dir}": str(tmp_path), "{out}": str(tmp_path / "out")}
    r = CliRunner().invoke(main, [subs.get(a, a) for a in args])
    assert r.exit_code == 2 and option in r.output and "Traceback" not in r.output, r.output
    assert not (tmp_path / "out").exists()
