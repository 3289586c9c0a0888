"""Fixtures the training tests share."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ftrt.io import write_image


@pytest.fixture()
def tiny_data(tmp_path: Path, retina: np.ndarray) -> Path:
    d = tmp_path / "good"
    d.mkdir()
    for k in range(3):
        write_image(d / f"g{k}.png", np.rot90(retina, k).copy())
    return d
