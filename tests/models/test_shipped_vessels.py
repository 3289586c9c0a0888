"""The shipped vessel segmenter (the restorer's vessel-map judge): its card, and that it finds vessels."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from ftrt.fov import fov_mask
from ftrt.models import count_parameters
from ftrt.models.pretrained import WEIGHTS_DIR, load_model
from ftrt.models.vessels import VesselNet

pytestmark = pytest.mark.skipif(not (WEIGHTS_DIR / "vessel-s.safetensors").exists(), reason="no shipped vessel-s")


def test_card_and_weights_agree() -> None:
    card = json.loads((WEIGHTS_DIR / "vessel-s.json").read_text())
    net, meta = load_model("vessel-s")
    assert isinstance(net, VesselNet) and meta["card_id"] == card["id"]
    assert card["parameters"] == count_parameters(net) and card["training"]["steps"] == meta["steps"]
    # Whatever judges restorations on DRIVE's test photographs must never have seen them.
    assert not any("test" in src for src in card["training"]["data"] + card["training"]["annotations"])
    assert card["validation"]["dice"] > 0.7


def test_finds_vessels_on_a_photograph_it_never_saw_and_fewer_once_blurred(retina_full: np.ndarray) -> None:
    """On the CC0 sample at 640 px: about the share of FOV pixels a fundus photograph's vessels cover
    (measured 14 %), and a blur that hides thin vessels leaves it fewer to find (measured 6.7 %)."""
    img = cv2.resize(retina_full, (640, 640), interpolation=cv2.INTER_AREA)
    mask = fov_mask(img)
    net, _ = load_model("vessel-s")

    def share(im: np.ndarray) -> float:
        with torch.no_grad():
            prob = net(torch.from_numpy(np.ascontiguousarray((im * mask[..., None]).transpose(2, 0, 1)))[None])
        return float((prob[0, 0].numpy() > 0.5)[mask].mean())

    clean = share(img)
    assert 0.07 < clean < 0.25
    assert share(cv2.GaussianBlur(img, (0, 0), 3.0)) < 0.6 * clean
