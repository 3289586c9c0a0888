"""Readability classifier: model, labels, training, export, scoring, and the restore gate."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch

from ftrt.export import export_onnx
from ftrt.onnx.metadata import get_metadata
from ftrt.io import write_image
from ftrt.metrics import binary_report, roc_auc
from ftrt.models import build_model, count_parameters
from ftrt.models.readability import LABELS, FeatureExtractor
from ftrt.runtime import open_backend
from ftrt.runtime.readability import ReadabilityScorer, classifier_input
from ftrt.training.config import ReadabilityConfig
from ftrt.training.readability import ReadabilityTrainer, class_weights, evaluate_heldout, masked_bce
from ftrt.training.readability_data import (
    SYNTHETIC_KINDS,
    LabelledImage,
    degrade_region,
    find_disc,
    fundus_rows,
    holdout_names,
    synthesise,
)


# ---------------------------------------------------------------- model
def test_edge_model_shapes_and_probabilities() -> None:
    m = build_model("readability").eval()
    x = torch.rand(3, 3, 224, 224)
    with torch.no_grad():
        p = m(x)
        feats = m.features(x)
    assert p.shape == (3, len(LABELS)) and float(p.min()) >= 0 and float(p.max()) <= 1
    assert [f.shape[-1] for f in feats] == [112, 56, 28, 14, 7, 7]
    assert count_parameters(m) < 1_000_000  # small enough for a Jetson beside the restorer


def test_inception_backbone_is_inception_v3_sized() -> None:
    full = build_model("readability-inception")
    assert 21_000_000 < count_parameters(full) < 22_500_000  # InceptionV3 without its auxiliary head
    small = build_model("readability-inception", width=0.25).eval()
    with torch.no_grad():
        assert small(torch.rand(1, 3, 224, 224)).shape == (1, 4)


def test_feature_extractor_stops_early_and_keeps_gradients() -> None:
    fx = FeatureExtractor(build_model("readability"), depth=3)
    x = torch.rand(1, 3, 64, 64, requires_grad=True)
    feats = fx(x)
    assert len(feats) == 3
    sum(f.mean() for f in feats).backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0


# ---------------------------------------------------------------- labels
def _fake_root(root: Path, retina: np.ndarray) -> Path:
    def put(rel: str, n: int, img: np.ndarray) -> None:
        d = root / rel
        d.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            write_image(d / f"img_{i:03d}.png", np.clip(img * (0.9 + 0.02 * i), 0, 1))

    put("drimdb/Good", 6, retina)
    put("drimdb/Bad", 4, cv2.GaussianBlur(retina, (0, 0), 6))
    put("drimdb/Outlier", 3, np.random.default_rng(0).uniform(0, 1, retina.shape).astype(np.float32))
    put("drive/training/images", 2, retina)
    put("csdi/images_1024", 2, retina)
    with (root / "csdi/resize_index.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "file", "source_format", "original_width", "original_height", "width", "height", "scale"])
        w.writerow(["a.png", "images_1024/img_000.png", "PNG", 512, 512, 256, 256, 0.5])
        w.writerow(["b.png", "images_1024/img_001.png", "PNG", 512, 512, 256, 256, 0.5])
    cols = ["id", "score", "optic_disc_clear", "optic_disc_x1", "optic_disc_y1", "optic_disc_x2", "optic_disc_y2"]
    with (root / "csdi/CSDI_annotations.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, cols)
        w.writeheader()
        w.writerow(dict(zip(cols, ["a.png", 1.5, "visible", 10, 10, 60, 60])))
        w.writerow(dict(zip(cols, ["b.png", 8.0, "not_visible", 10, 10, 60, 60])))
    return root


def test_label_rules(tmp_path: Path, retina: np.ndarray) -> None:
    rows = {f"{g}/{p.name}": (g, lab, extra) for p, g, lab, extra in fundus_rows(_fake_root(tmp_path, retina))}
    good = next(v for k, v in rows.items() if k.startswith("drimdb/Good"))
    bad = next(v for k, v in rows.items() if k.startswith("drimdb/Bad"))
    outlier = next(v for k, v in rows.items() if k.startswith("drimdb/Outlier"))
    assert good[1] == (1, 1, 1, 1)
    assert bad[1][0] == 1 and bad[1][3] == 0 and math.isnan(bad[1][1]) and math.isnan(bad[1][2])
    assert outlier[1] == (0, 0, 0, 0)
    csdi = sorted((v for v in rows.values() if v[0] == "csdi"), key=lambda v: v[1][2], reverse=True)
    assert csdi[0][1][2:] == (1.0, 1.0)  # disc visible, severity 1.5 -> readable
    assert csdi[1][1][2:] == (0.0, 0.0)  # disc not visible, severity 8 -> unreadable
    assert csdi[0][2]["disc_box"] == [5.0, 5.0, 30.0, 30.0]  # boxes scaled to the resized image


def test_holdout_is_deterministic_and_stratified() -> None:
    names = [(f"drimdb/Good/{i}.jpg", "drimdb/Good") for i in range(100)] + \
            [(f"odir/normal/{i}.jpg", "odir/normal") for i in range(50)]
    a, b = holdout_names(names), holdout_names(list(reversed(names)))
    assert a == b
    assert sum(n.startswith("drimdb") for n in a) == 30 and sum(n.startswith("odir") for n in a) == 10


def test_synthetic_regional_degradation_is_local(retina: np.ndarray) -> None:
    chw = classifier_input(retina, 224)
    x, y = find_disc(chw)
    lum = chw[1]
    inside = lum[chw.max(0) > 0.04]
    assert lum[y, x] > np.percentile(inside, 90)  # the detected disc is among the brightest pixels
    out = degrade_region(chw, (x, y), 20, np.random.default_rng(0))
    diff = np.abs(out - chw).max(axis=0)
    yy, xx = np.mgrid[:224, :224]
    far = np.hypot(xx - x, yy - y) > 30
    assert diff[~far].mean() > 0.02 and diff[far].max() < 1e-6
    img, labels, kind = synthesise(LabelledImage("x", "drive", (1, 1, 1, 1), chw), np.random.default_rng(1))
    assert img.shape == chw.shape and labels == SYNTHETIC_KINDS[kind]


def test_class_weights_balance_each_label() -> None:
    labels = np.array([[1, 1, np.nan, 0], [1, 0, np.nan, 1], [1, 1, 1, 1], [0, 1, 0, 1]], np.float64)
    p = np.full(4, 0.25)
    w_pos, w_neg = class_weights([(1.0, labels, p)])
    pos = (labels == 1).mean(0)
    neg = (labels == 0).mean(0)
    np.testing.assert_allclose(w_pos * pos, w_neg * neg, rtol=1e-6)


def test_masked_bce_ignores_unknown_labels() -> None:
    logits = torch.zeros(2, 4, requires_grad=True)
    target = torch.tensor([[1.0, float("nan"), 0.0, 1.0], [float("nan")] * 4])
    loss = masked_bce(logits, target, torch.ones(4), torch.ones(4))
    loss.backward()
    assert torch.isfinite(loss) and abs(float(loss.detach()) - math.log(2)) < 1e-6
    assert float(logits.grad[0, 1]) == 0 and float(logits.grad[1].abs().sum()) == 0


def test_auc_and_confusion_by_hand() -> None:
    y = np.array([0, 0, 1, 1, 1])
    s = np.array([0.1, 0.6, 0.4, 0.8, 0.6])
    # positive/negative pairs: (0.4>0.1) (0.4<0.6) (0.8>both) (0.6>0.1, 0.6=0.6 -> 1/2) => 4.5 / 6
    assert roc_auc(y, s) == pytest.approx(4.5 / 6)
    rep = binary_report(y, s, 0.5)
    assert rep["confusion"] == [[1, 1], [1, 2]]
    assert rep["balanced_accuracy"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert roc_auc(np.ones(3), np.arange(3)) is None


def test_evaluate_heldout_reports_drimdb_targets() -> None:
    items = [LabelledImage(f"drimdb/{g}/{i}", f"drimdb/{g}", lab, np.zeros((3, 8, 8), np.float32))
             for i, (g, lab) in enumerate([("Good", (1, 1, 1, 1)), ("Bad", (1, np.nan, np.nan, 0)),
                                           ("Outlier", (0, 0, 0, 0))])]
    probs = np.array([[0.9, 0.9, 0.9, 0.9], [0.9, 0.5, 0.5, 0.2], [0.1, 0.1, 0.1, 0.1]])
    rep = evaluate_heldout(items, probs)
    assert rep["targets"]["drimdb_good_vs_not"]["balanced_accuracy"] == 1.0
    assert rep["targets"]["drimdb_outlier_vs_fundus_auc"] == 1.0
    assert rep["per_label"]["macula"]["n"] == 2  # the Bad image has no macula label


def test_a_few_training_steps_lower_the_loss(tmp_path: Path, retina: np.ndarray) -> None:
    root = _fake_root(tmp_path / "data", retina)
    cfg = ReadabilityConfig(data_root=str(root), out=str(tmp_path / "run"), steps=12, batch_size=8, lr=3e-3,
                            warmup=1, side=96, threads=2)
    trainer = ReadabilityTrainer(cfg, log=lambda m: None)
    assert trainer.heldout and not {it.name for it in trainer.heldout} & {it.name for it in trainer.train}
    x, y = trainer.sample_batch()
    losses = [trainer.train_step(x, y) for _ in range(12)]
    assert losses[-1] < 0.7 * losses[0], losses


# ---------------------------------------------------------------- export and runtime
@pytest.fixture(scope="module")
def random_classifier(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from ftrt.training.checkpoint import save_weights

    torch.manual_seed(0)
    m = build_model("readability").eval()
    d = tmp_path_factory.mktemp("cls")
    save_weights(d / "cls.safetensors", m.state_dict(), {"preset": "readability", "kwargs": {}})
    res = export_onnx(m, d / "cls.onnx", preset="readability", card_id="random")
    assert max(r["max_abs_err"] for r in res.parity) < 1e-4
    assert [r["shape"][0] for r in res.parity] == [1, 3]
    return d / "cls.safetensors", d / "cls.onnx"


def test_classifier_onnx_has_dynamic_batch_and_labels(random_classifier: tuple[Path, Path]) -> None:
    proto = onnx.load(str(random_classifier[1]))
    onnx.checker.check_model(proto, full_check=True)
    meta = get_metadata(proto)
    assert meta["model"] == "readability" and meta["labels"] == ",".join(LABELS) and meta["input_side"] == "224"
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [3, 224, 224]


def test_scorer_torch_and_ort_agree(random_classifier: tuple[Path, Path], retina: np.ndarray) -> None:
    scores = []
    for backend, path in (("torch", random_classifier[0]), ("ort", random_classifier[1])):
        with open_backend(backend, str(path)) as be:
            r = ReadabilityScorer(be).score_batch([retina, retina[::-1]])
        scores.append([[s.probs[k] for k in LABELS] for s in r])
    np.testing.assert_allclose(scores[0], scores[1], atol=1e-5)


def test_scorer_refuses_a_restorer(random_onnx: Path) -> None:
    with open_backend("ort", str(random_onnx)) as be, pytest.raises(ValueError, match="not a readability"):
        ReadabilityScorer(be)
