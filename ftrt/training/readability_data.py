"""Labels for the readability classifier, built from real datasets by written rules.

Every sample carries four labels (valid, macula, disc, retina); a label a
source says nothing about is NaN and masked out of the loss. The rules are
data (``LABEL_RULES``), copied into the model card so a reader sees exactly
what "readable" means for the shipped model.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ftrt.io import ImageReadError, read_image
from ftrt.models.readability import LABELS
from ftrt.runtime.readability import classifier_input, square_fov_crop, square_to_input

NAN = float("nan")
ALL_GOOD = (1.0, 1.0, 1.0, 1.0)

LABEL_RULES = {
    "drimdb/Good": "valid=1 macula=1 disc=1 retina=1",
    "drimdb/Bad": "valid=1 retina=0 (macula, disc unknown)",
    "drimdb/Outlier": "valid=0 macula=0 disc=0 retina=0 (not a fundus photograph)",
    "drive": "valid=1 macula=1 disc=1 retina=1 (research-grade photographs)",
    "odir/normal": "valid=1 macula=1 disc=1 retina=1",
    "odir/cataract": "valid=1 (readability not graded)",
    "csdi": "valid=1; disc=1 if optic_disc_clear is 'visible' else 0; retina=1 if severity < 3, "
            "0 if severity >= 7, unknown between",
    "non-fundus": "scikit-image sample photographs (astronaut excluded: kept for the test) and synthetic "
                  "blank/noise/gradient frames: valid=0 macula=0 disc=0 retina=0",
    "synthetic disc": "a good training image with blur and haze placed over the brightest region "
                      "(the optic disc): disc=0, macula=1, valid=1, retina unknown",
    "synthetic macula": "a good training image with blur and haze over the darkest region 2-3 disc "
                        "diameters from the disc (the macula): macula=0, disc=1, valid=1, retina unknown",
    "synthetic blur": "a good training image blurred until small vessels vanish (sigma 3-6 px at 224): "
                      "retina=0, valid=1, macula and disc unknown",
}
# Held-out fraction per group; DRIMDB gets more so its targets are measured on enough images.
HOLDOUT = {"drimdb": 0.3}
DEFAULT_HOLDOUT = 0.2
NON_FUNDUS_SKIMAGE = ("camera", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry",
                      "moon", "page", "text", "brick", "grass", "gravel", "coins", "horse", "clock", "cat")


@dataclass
class LabelledImage:
    name: str        # stable id: "<group>/<file name>"
    group: str       # the rule that labelled it, a key of LABEL_RULES
    labels: tuple[float, float, float, float]
    image: np.ndarray  # 3 x side x side float32, classifier input
    disc_box: tuple[int, int, int, int] | None = None  # CSDI's box on the classifier input (x0, y0, x1, y1)


def _rows(sources: list[tuple[Path, str, tuple[float, ...]]]) -> list[tuple[Path, str, tuple[float, ...]]]:
    out = []
    for folder, group, labels in sources:
        if folder.is_dir():
            out.extend((p, group, labels) for p in sorted(folder.iterdir())
                       if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".tif", ".tiff"))
    return out


def fundus_rows(root: Path) -> list[tuple[Path, str, tuple[float, ...], dict]]:
    """(path, group, labels, extra) for every labelled image under ``root`` (the shared data folder)."""
    rows = [(p, g, lab, {}) for p, g, lab in _rows([
        (root / "drimdb/Good", "drimdb/Good", ALL_GOOD),
        (root / "drimdb/Bad", "drimdb/Bad", (1.0, NAN, NAN, 0.0)),
        (root / "drimdb/Outlier", "drimdb/Outlier", (0.0, 0.0, 0.0, 0.0)),
        (root / "drive/training/images", "drive", ALL_GOOD),
        (root / "drive/test/images", "drive", ALL_GOOD),
        (root / "odir_eyedisease/normal", "odir/normal", ALL_GOOD),
        (root / "odir_eyedisease/cataract", "odir/cataract", (1.0, NAN, NAN, NAN)),
    ])]
    ann = root / "csdi/CSDI_annotations.csv"
    index = root / "csdi/resize_index.csv"
    if ann.exists() and index.exists():
        files = {r["id"]: r for r in csv.DictReader(index.open())}
        for r in csv.DictReader(ann.open(encoding="utf-8")):
            f = files.get(r["id"])
            if f is None:
                continue
            score = float(r["score"])
            retina = 1.0 if score < 3 else 0.0 if score >= 7 else NAN
            disc = 1.0 if r["optic_disc_clear"].strip() == "visible" else 0.0
            extra = {"disc_box": [float(r[k]) * float(f["scale"]) for k in
                                  ("optic_disc_x1", "optic_disc_y1", "optic_disc_x2", "optic_disc_y2")]}
            rows.append((root / "csdi" / f["file"], "csdi", (1.0, NAN, disc, retina), extra))
    return rows


def _stable_rank(name: str) -> str:
    return hashlib.sha1(name.encode()).hexdigest()


def holdout_names(rows: list[tuple[str, str]]) -> set[str]:
    """Deterministic, stratified hold-out: per group, the files whose name hashes lowest."""
    by_group: dict[str, list[str]] = {}
    for name, group in rows:
        by_group.setdefault(group, []).append(name)
    held: set[str] = set()
    for group, names in by_group.items():
        frac = HOLDOUT.get(group.split("/")[0], DEFAULT_HOLDOUT)
        names = sorted(names, key=_stable_rank)
        held.update(names[: round(frac * len(names))])
    return held


def load_labelled(root: str | Path, side: int = 224, log=print) -> list[LabelledImage]:
    """Read, FOV-crop and resize every labelled fundus image (a few hundred: they fit in memory)."""
    root = Path(root)
    out = []
    for path, group, labels, extra in fundus_rows(root):
        try:
            img, _ = read_image(path)
        except ImageReadError as exc:
            log(f"warning: {exc}")
            continue
        sq, (top, left) = square_fov_crop(img)
        box = None
        if "disc_box" in extra:
            # The annotated disc box, in the same geometry as the classifier input.
            scale = side / sq.shape[0]
            bx0, by0, bx1, by1 = extra["disc_box"]
            box = (int((bx0 - left) * scale), int((by0 - top) * scale), int((bx1 - left) * scale),
                   int((by1 - top) * scale))
        out.append(LabelledImage(f"{group}/{path.name}", group, labels, square_to_input(sq, side), box))
    return out


def non_fundus_images(side: int = 224, seed: int = 0) -> list[LabelledImage]:
    """Negatives for ``valid``: photographs that are not fundus images, and degenerate frames."""
    rng = np.random.default_rng([seed, 5])
    out = []
    try:
        from skimage import data as skdata
    except ImportError:
        skdata = None
    for name in NON_FUNDUS_SKIMAGE if skdata is not None else ():
        try:
            im = np.asarray(getattr(skdata, name)())
        except Exception:  # noqa: BLE001 - a sample missing from this scikit-image version is fine
            continue
        im = im.astype(np.float32) / (255.0 if im.max() > 1 else 1.0)
        if im.ndim == 2:
            im = np.repeat(im[..., None], 3, axis=2)
        out.append(LabelledImage(f"non-fundus/{name}", "non-fundus", (0.0, 0.0, 0.0, 0.0),
                                 classifier_input(im[..., :3], side)))
    for i in range(12):
        kind = i % 3
        if kind == 0:
            frame = np.full((side, side, 3), rng.uniform(0, 1, 3), np.float32)
        elif kind == 1:
            frame = rng.uniform(0, 1, (side, side, 3)).astype(np.float32)
        else:
            g = np.linspace(0, 1, side, dtype=np.float32)
            frame = (g[:, None, None] * rng.uniform(0, 1, 3) + g[None, :, None] * rng.uniform(0, 1, 3)) / 2
        out.append(LabelledImage(f"non-fundus/synthetic_{i}", "non-fundus", (0.0, 0.0, 0.0, 0.0),
                                 np.ascontiguousarray(frame.transpose(2, 0, 1), dtype=np.float32)))
    return out


# ---------------------------------------------------------------- landmarks and local degradations
def _fov_of(chw: np.ndarray) -> np.ndarray:
    return chw.max(axis=0) > 0.04


def find_disc(chw: np.ndarray) -> tuple[int, int]:
    """(x, y) of the optic disc: the brightest blob of the smoothed luminance inside the eroded FOV."""
    side = chw.shape[1]
    lum = chw[0] * 0.3 + chw[1] * 0.6 + chw[2] * 0.1
    fov = cv2.erode(_fov_of(chw).astype(np.uint8), np.ones((side // 16,) * 2, np.uint8)).astype(bool)
    smooth = cv2.GaussianBlur(lum, (0, 0), side / 40)
    smooth[~fov] = -1
    y, x = np.unravel_index(int(np.argmax(smooth)), smooth.shape)
    return int(x), int(y)


def find_macula(chw: np.ndarray, disc: tuple[int, int]) -> tuple[int, int]:
    """(x, y) of the macula: the locally darkest spot 2-3 disc diameters from the disc, towards the FOV centre.

    Dividing by a wide blur removes vignetting, which would otherwise pull the
    minimum to the dim rim of the field.
    """
    side = chw.shape[1]
    lum = chw[0] * 0.3 + chw[1] * 0.6 + chw[2] * 0.1
    fov_raw = _fov_of(chw)
    fov = cv2.erode(fov_raw.astype(np.uint8), np.ones((side // 6,) * 2, np.uint8)).astype(bool)
    local = cv2.GaussianBlur(lum, (0, 0), side / 30) / (cv2.GaussianBlur(lum, (0, 0), side / 6) + 1e-3)
    ys, xs = np.nonzero(fov_raw)
    centre = (xs.mean(), ys.mean()) if xs.size else (side / 2, side / 2)
    yy, xx = np.mgrid[:side, :side]
    vx, vy = xx - disc[0], yy - disc[1]
    d = np.hypot(vx, vy)
    cx, cy = centre[0] - disc[0], centre[1] - disc[1]
    cos = (vx * cx + vy * cy) / (d * np.hypot(cx, cy) + 1e-6)
    cone = fov & (d > 0.25 * side) & (d < 0.45 * side) & (cos > np.cos(np.radians(30)))
    if not cone.any():
        return int(centre[0]), int(centre[1])
    y, x = np.unravel_index(int(np.argmin(np.where(cone, local, np.inf))), local.shape)
    return int(x), int(y)


def degrade_region(chw: np.ndarray, centre: tuple[int, int], radius: float,
                   rng: np.random.Generator) -> np.ndarray:
    """Blur, haze and dim a feathered disc of ``radius`` px around ``centre`` (a local cataract/artefact)."""
    img = chw.transpose(1, 2, 0)
    side = img.shape[0]
    blurred = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(4, 8)))
    haze = float(rng.uniform(0.3, 0.7))
    tint = img[_fov_of(chw)].mean(axis=0) if _fov_of(chw).any() else np.full(3, 0.3, np.float32)
    local = (1 - haze) * blurred + haze * tint * float(rng.uniform(0.6, 1.1))
    yy, xx = np.mgrid[:side, :side]
    d = np.hypot(xx - centre[0], yy - centre[1])
    alpha = np.clip((radius - d) / (0.35 * radius) + 1.0, 0.0, 1.0) * _fov_of(chw)
    out = img * (1 - alpha[..., None]) + local * alpha[..., None]
    return np.ascontiguousarray(out.transpose(2, 0, 1), dtype=np.float32)


def global_blur(chw: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    img = cv2.GaussianBlur(chw.transpose(1, 2, 0), (0, 0), float(rng.uniform(3, 6)))
    img *= _fov_of(chw)[..., None]
    return np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32)


SYNTHETIC_KINDS: dict[str, tuple[float, float, float, float]] = {
    "synthetic disc": (1.0, 1.0, 0.0, NAN),
    "synthetic macula": (1.0, 0.0, 1.0, NAN),
    "synthetic blur": (1.0, NAN, NAN, 0.0),
}


def synthesise(item: LabelledImage, rng: np.random.Generator) -> tuple[np.ndarray, tuple[float, ...], str]:
    """One regional or global synthetic variant of a good image, with its labels and rule name."""
    chw = item.image
    side = chw.shape[1]
    kind = list(SYNTHETIC_KINDS)[int(rng.integers(len(SYNTHETIC_KINDS)))]
    if kind == "synthetic blur":
        img = global_blur(chw, rng)
    else:
        disc = find_disc(chw)
        if kind == "synthetic disc":
            img = degrade_region(chw, disc, side * rng.uniform(0.08, 0.12), rng)
        else:
            img = degrade_region(chw, find_macula(chw, disc), side * rng.uniform(0.10, 0.14), rng)
    return img, SYNTHETIC_KINDS[kind], kind


def disc_detector_hit_rate(items: list[LabelledImage]) -> float | None:
    """Share of CSDI images whose detected disc falls inside the annotated disc box (grown by 50%)."""
    hits, n = 0, 0
    for it in items:
        if it.disc_box is None:
            continue
        x0, y0, x1, y1 = it.disc_box
        gx, gy = (x1 - x0) * 0.25, (y1 - y0) * 0.25
        x, y = find_disc(it.image)
        hits += int(x0 - gx <= x <= x1 + gx and y0 - gy <= y <= y1 + gy)
        n += 1
    return hits / n if n else None


def augment(chw: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Flips, rotation, scale and a mild photometric jitter (strong exposure changes would change the label)."""
    img = chw.transpose(1, 2, 0)
    side = img.shape[0]
    if rng.random() < 0.5:
        img = img[:, ::-1]
    m = cv2.getRotationMatrix2D((side / 2, side / 2), float(rng.uniform(-20, 20)), float(rng.uniform(0.9, 1.1)))
    img = cv2.warpAffine(np.ascontiguousarray(img), m, (side, side), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT)
    gain = rng.uniform(0.85, 1.15, 3).astype(np.float32)
    gamma = float(rng.uniform(0.85, 1.15))
    img = np.clip(img * gain, 0, 1) ** gamma
    return np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32)


def label_counts(labels: np.ndarray) -> dict[str, dict[str, int]]:
    return {name: {"pos": int(np.sum(labels[:, j] == 1)), "neg": int(np.sum(labels[:, j] == 0))}
            for j, name in enumerate(LABELS)}
