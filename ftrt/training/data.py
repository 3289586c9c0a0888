"""Paired training data synthesised on the fly from folders of good fundus photographs.

Sample ``i`` is a pure function of (seed, i): which image, its degradation, the
crop and the flips all come from ``default_rng([seed, i])``. A resumed run
therefore sees exactly the samples the uninterrupted run would have seen.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ftrt.degrade import degrade
from ftrt.degrade.api import SynFn
from ftrt.degrade.physical import check_probability, check_ranges
from ftrt.fov import fov_mask
from ftrt.io import ImageReadError, collect_inputs, read_image
from ftrt.runtime.readability import square_fov_crop
from ftrt.interlace import deinterlace as row_comb_free


@dataclass
class FundusImage:
    path: Path
    image: np.ndarray  # uint8 RGB, long side <= max_side (keeps the pool small in RAM)
    mask: np.ndarray
    vessels: np.ndarray | None = None  # bool vessel annotation at the image's size, where one exists

    def float(self) -> np.ndarray:
        return self.image.astype(np.float32) / 255.0


def load_pool(sources: list[str], max_side: int, min_side: int = 64, square: bool = False,
              deinterlace: bool = False) -> tuple[list[FundusImage], list[str]]:
    """Read every image under ``sources``; returns (images, errors) so a bad file never stops training.

    ``square``: each image becomes its FOV's bounding square resized to ``max_side``, so that
    photographs from different cameras share one geometry (a crop at (y, x) sees the same part
    of the fundus and the same black border on all of them). ``deinterlace``: a photograph whose
    alternate rows differ has that comb taken out first, at its own row pitch (``ftrt.interlace``).
    """
    pool, errors = [], []
    for path in collect_inputs(sources):
        try:
            img, _ = read_image(path)
        except ImageReadError as exc:
            errors.append(str(exc))
            continue
        if deinterlace:
            img = row_comb_free(img)[0]
        if square:
            img = square_fov_crop(img)[0]
            img = cv2.resize(img, (max_side, max_side),
                             interpolation=cv2.INTER_AREA if img.shape[0] > max_side else cv2.INTER_LINEAR)
        h, w = img.shape[:2]
        s = max_side / max(h, w)
        if s < 1.0:
            img = cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
        if min(img.shape[:2]) < min_side:
            errors.append(f"{path}: smaller than {min_side} px, skipped")
            continue
        pool.append(FundusImage(path, (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8), fov_mask(img)))
    return pool, errors


def load_pool_logged(sources: list[str], max_side: int, log: Callable[[str], None],
                     square: bool = False, deinterlace: bool = False) -> list[FundusImage]:
    """``load_pool`` with each unusable file logged as a warning (a training run goes on without it)."""
    pool, errors = load_pool(sources, max_side, square=square, deinterlace=deinterlace)
    for e in errors:
        log(f"warning: {e}")
    return pool


def vessel_key(path: Path) -> str:
    """What pairs a photograph with its vessel annotation: the name up to the first "_" (DRIVE's
    ``21_training.tif`` and ``21_manual1.gif``)."""
    return path.stem.split("_")[0]


def read_vessel_map(path: Path) -> np.ndarray:
    """A binary vessel annotation (GIF, PNG, TIFF) as bool; Pillow, because OpenCV reads no GIF."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("L")) > 127


def attach_vessels(pool: list[FundusImage], sources: list[str]) -> int:
    """Give each photograph its vessel annotation from ``sources`` (matched by ``vessel_key``, resized to the
    photograph); returns how many photographs got one. An annotation of another size than its photograph's
    original is an error: it would label the wrong pixels."""
    maps = {vessel_key(p): p for p in collect_inputs(sources, suffixes=(".gif", ".png", ".tif", ".tiff"))}
    n = 0
    for item in pool:
        src = maps.get(vessel_key(item.path))
        if src is None:
            continue
        ves = read_vessel_map(src)
        h, w = item.image.shape[:2]
        if abs(ves.shape[0] / ves.shape[1] - h / w) > 0.01:
            raise ValueError(f"{src}: vessel map {ves.shape[1]}x{ves.shape[0]} does not match {item.path}")
        item.vessels = cv2.resize(ves.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA) > 0.5
        n += 1
    return n


def split_pool(pool: list[FundusImage], n_val: int, seed: int) -> tuple[list[FundusImage], list[FundusImage]]:
    """Deterministic hold-out of ``n_val`` images for validation (never trained on)."""
    order = np.random.default_rng([seed, 7]).permutation(len(pool))
    val = [pool[i] for i in order[:n_val]]
    train = [pool[i] for i in order[n_val:]]
    return train, val


def heldout_by_name(paths: list[Path], fraction: float, salt: str = "ftrt") -> tuple[list[Path], list[Path]]:
    """(kept, held out): a file is held out by a hash of its name, so the split never depends on which
    other files are present or in what order they are listed."""
    import hashlib

    kept: list[Path] = []
    held: list[Path] = []
    for p in paths:
        h = hashlib.sha1(f"{salt}:{p.name}".encode()).digest()
        (held if int.from_bytes(h[:4], "big") / 2**32 < fraction else kept).append(p)
    return kept, held


def rescale(item: FundusImage, rng: np.random.Generator,
            scale_range: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """The float photograph and its mask at a random scale, log-uniform in ``scale_range``: vessels of every
    width a camera and working resolution give, from a pool of a few sizes. (1, 1) draws nothing."""
    lo, hi = scale_range
    if lo == hi == 1.0:
        return item.float(), item.mask
    s = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    h, w = item.image.shape[:2]
    size = (max(64, round(w * s)), max(64, round(h * s)))
    img = cv2.resize(item.image, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
    mask = cv2.resize(item.mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
    return img.astype(np.float32) / 255.0, mask


def vessels_at(item: FundusImage, shape: tuple[int, ...]) -> np.ndarray:
    """The photograph's vessel annotation on the grid of its rescaled copy (``shape``: H, W), as the share of
    each pixel that is vessel."""
    assert item.vessels is not None
    return cv2.resize(item.vessels.astype(np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_AREA)


def random_crop_in_fov(rng: np.random.Generator, mask: np.ndarray, crop: int) -> tuple[int, int]:
    """Top-left corner of a crop centred on a random FOV pixel (few crops of black border)."""
    h, w = mask.shape
    ys, xs = np.nonzero(mask[:: 4, :: 4])
    if ys.size:
        k = int(rng.integers(ys.size))
        cy, cx = ys[k] * 4, xs[k] * 4
    else:
        cy, cx = int(rng.integers(h)), int(rng.integers(w))
    y0 = int(np.clip(cy - crop // 2, 0, h - crop))
    x0 = int(np.clip(cx - crop // 2, 0, w - crop))
    return y0, x0


def augment(rng: np.random.Generator, *arrays: np.ndarray) -> list[np.ndarray]:
    """The same random flip and rot90 applied to every array of a pair."""
    k = int(rng.integers(4))
    flip = bool(rng.integers(2))
    out = []
    for a in arrays:
        a = np.rot90(a, k)
        if flip:
            a = a[:, ::-1]
        out.append(np.ascontiguousarray(a))
    return out


class PairedDegradationDataset(Dataset):
    """Indexable by a global sample index; returns (degraded, clean) CHW float tensors, and with
    ``vessels`` a third, the 1 x H x W vessel annotation of the crop (-1 where the photograph has none)."""

    def __init__(self, pool: list[FundusImage], kind: str, crop: int, seed: int, syn: SynFn | None = None,
                 syn_fraction: float = 0.0, scale_range: tuple[float, float] = (1.0, 1.0),
                 vessels: bool = False, vessel_fraction: float = 0.0,
                 probability: Mapping[str, float] | None = None, input_bits: int = 0,
                 ranges: Mapping[str, Sequence[float]] | None = None) -> None:
        if not pool:
            raise ValueError("no usable training images")
        check_bits(input_bits)
        self.input_bits = input_bits
        if probability and kind != "real":
            raise ValueError(f"family_probability applies to kind 'real', not {kind!r}")
        # Checked here, where the run takes it: a typo fails before training, not in a data-loader worker.
        self.probability = check_probability(probability or {})
        if ranges and kind != "real":
            raise ValueError(f"family_ranges applies to kind 'real', not {kind!r}")
        self.ranges = check_ranges(ranges or {})
        self.pool, self.kind, self.crop, self.seed = pool, kind, crop, seed
        self.syn, self.syn_fraction = syn, syn_fraction
        self.scale_range = scale_range
        self.vessels = vessels
        # Annotated photographs are few (DRIVE: 20): drawn this often, the segmenter sees labels every batch.
        self.labelled = [i for i, item in enumerate(pool) if item.vessels is not None]
        self.vessel_fraction = vessel_fraction if self.labelled else 0.0

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        rng = np.random.default_rng([self.seed, int(index)])
        k = int(rng.integers(len(self.pool)))
        if self.vessel_fraction and float(rng.uniform()) < self.vessel_fraction:
            k = self.labelled[k % len(self.labelled)]
        item = self.pool[k]
        clean, mask = rescale(item, rng, self.scale_range)
        crop = min(self.crop, *clean.shape[:2])
        use_syn = self.syn is not None and float(rng.uniform()) < self.syn_fraction
        lq, _ = degrade(clean, "syn" if use_syn else self.kind, rng, mask=mask, syn=self.syn,
                        probability=None if use_syn else self.probability, ranges=None if use_syn else self.ranges)
        lq = quantise(lq, self.input_bits)
        y0, x0 = random_crop_in_fov(rng, mask, crop)
        sl = (slice(y0, y0 + crop), slice(x0, x0 + crop))
        gt = clean * mask[..., None]
        if not self.vessels:
            lq_c, gt_c = augment(rng, lq[sl], gt[sl])
            return to_chw(lq_c), to_chw(gt_c)
        ves = np.full(clean.shape[:2], -1.0, np.float32) if item.vessels is None else vessels_at(item, clean.shape[:2])
        lq_c, gt_c, ves_c = augment(rng, lq[sl], gt[sl], ves[sl][..., None])
        return to_chw(lq_c), to_chw(gt_c), to_chw(ves_c)


class UnpairedCropDataset(Dataset):
    """(good crop, real cataract crop) taken at the same place of two square FOV crops, same flip/rotation.

    The images are unpaired (different eyes); the shared location only lines up the black FOV
    borders so the critic cannot tell real from fake by where the border is.
    """

    def __init__(self, good: list[FundusImage], cataract: list[FundusImage], crop: int, seed: int) -> None:
        if not good or not cataract:
            raise ValueError("Syn training needs both good and real cataract images")
        self.good, self.cataract, self.crop, self.seed = good, cataract, crop, seed

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, 3, int(index)])
        g = self.good[int(rng.integers(len(self.good)))]
        c = self.cataract[int(rng.integers(len(self.cataract)))]
        crop = min(self.crop, *g.image.shape[:2], *c.image.shape[:2])
        y0, x0 = random_crop_in_fov(rng, g.mask, crop)
        sl = (slice(y0, y0 + crop), slice(x0, x0 + crop))
        good, cat = augment(rng, (g.float() * g.mask[..., None])[sl], (c.float() * c.mask[..., None])[sl])
        return to_chw(good), to_chw(cat)


class RealCropDataset(Dataset):
    """Unlabelled crops of real low-quality photographs (the mean teacher's input), by global sample index."""

    def __init__(self, pool: list[FundusImage], crop: int, seed: int) -> None:
        if not pool:
            raise ValueError("no usable real images")
        self.pool, self.crop, self.seed = pool, crop, seed

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, index: int) -> torch.Tensor:
        rng = np.random.default_rng([self.seed, 5, int(index)])
        item = self.pool[int(rng.integers(len(self.pool)))]
        crop = min(self.crop, *item.image.shape[:2])
        y0, x0 = random_crop_in_fov(rng, item.mask, crop)
        img = item.float() * item.mask[..., None]
        (c,) = augment(rng, img[y0:y0 + crop, x0:x0 + crop])
        return to_chw(c)


class ZipDataset(Dataset):
    """Sample i of each dataset side by side, flattened into one tuple."""

    def __init__(self, *parts: Dataset) -> None:
        self.parts = parts

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        out: list[torch.Tensor] = []
        for p in self.parts:
            item = p[index]
            out.extend(item if isinstance(item, tuple) else (item,))
        return tuple(out)


def to_chw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1), dtype=np.float32))


def check_bits(bits: int) -> None:
    if bits != 0 and not 2 <= bits <= 16:
        raise ValueError(f"input_bits must be 0 (float inputs) or 2-16, not {bits}")


def quantise(img: np.ndarray, bits: int) -> np.ndarray:
    """``img`` (float, 0-1) rounded to ``2**bits`` levels, as a file of that depth stores it; 0: unchanged."""
    if not bits:
        return img
    top = np.float32(2**bits - 1)
    return (np.round(np.clip(img, 0.0, 1.0) * top) / top).astype(np.float32)


def make_validation_set(val: list[FundusImage], kind: str, seed: int,
                        input_bits: int = 0) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Fixed (degraded, clean, mask) triples: same seed, same set, so PSNR curves compare across runs."""
    check_bits(input_bits)
    out = []
    for i, item in enumerate(val):
        clean = item.float() * item.mask[..., None]
        lq, _ = degrade(clean, kind, np.random.default_rng([seed, 99, i]), mask=item.mask)
        lq = quantise(lq, input_bits)
        out.append((lq, clean, item.mask))
    return out
