from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def retina_full() -> np.ndarray:
    """The CC0 fundus photograph shipped with scikit-image, float RGB [0, 1]."""
    from skimage import data

    return data.retina().astype(np.float32) / 255.0


@pytest.fixture(scope="session")
def retina(retina_full: np.ndarray) -> np.ndarray:
    return cv2.resize(retina_full, (256, 256), interpolation=cv2.INTER_AREA)


@pytest.fixture()
def retina_png(tmp_path: Path, retina: np.ndarray) -> Path:
    from ftrt.io import write_image

    d = tmp_path / "in"
    d.mkdir()
    return write_image(d / "retina.png", retina)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "drive").is_dir():
        pytest.skip("research data ../shared/data not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def random_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """res-s with a random (non-identity) head, exported once per session for runtime tests."""
    import torch

    from ftrt.export import export_onnx
    from ftrt.models import build_model

    torch.manual_seed(0)
    m = build_model("res-s").eval()
    for p in m.out_proj.parameters():
        torch.nn.init.normal_(p, std=0.05)
    out = tmp_path_factory.mktemp("onnx") / "random-res-s.onnx"
    export_onnx(m, out, preset="res-s", card_id="random", opset=17, check=False)
    return out


@pytest.fixture(scope="session")
def fundus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six real-looking fundus photographs: the CC0 sample under different crops, flips and exposure."""
    import cv2
    from skimage import data

    from ftrt.io import write_image

    base = data.retina().astype(np.float32) / 255.0
    d = tmp_path_factory.mktemp("fundus")
    for i in range(6):
        img = cv2.resize(base, (160 + 16 * i, 160 + 16 * i), interpolation=cv2.INTER_AREA)
        img = np.clip(img * (0.8 + 0.08 * i), 0, 1)
        write_image(d / f"fundus_{i}.png", img[:, ::-1] if i % 2 else img)
    return d
