"""DICOM in and out for camera-side restoration (pydicom; the ``dicom`` extra).

Reads ophthalmic photography (8/16-bit), VL photographic and secondary-capture
instances, compressed ones through the pylibjpeg plugins. Writes the restored
image as a new instance derived from the original: same patient and study, a
derived series per (original series, model), new SOP Instance UID, ImageType
DERIVED\\SECONDARY, a description naming ftrt and the model, and a reference to
the source image. UIDs are derived from the original's UIDs and the model id,
so re-processing a file after a crash reproduces the same instance instead of
sending a second copy to the archive.

Messages from this module name the file and the technical problem only: never a
DICOM element value, so no patient data reaches a log.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from ftrt.io.atomic import atomic_write
from ftrt.io.files import ImageReadError, check_regular_file

DICOM_SUFFIXES = {".dcm", ".dicom"}

OP_8BIT = "1.2.840.10008.5.1.4.1.1.77.1.5.1"
OP_16BIT = "1.2.840.10008.5.1.4.1.1.77.1.5.2"
# SOP classes whose pixel data is a colour or grey photograph ftrt can restore.
PHOTO_SOP_CLASSES = {
    OP_8BIT: "Ophthalmic Photography 8 Bit",
    OP_16BIT: "Ophthalmic Photography 16 Bit",
    "1.2.840.10008.5.1.4.1.1.77.1.4": "VL Photographic",
    "1.2.840.10008.5.1.4.1.1.7": "Secondary Capture",
    "1.2.840.10008.5.1.4.1.1.7.2": "Multi-frame Grayscale Byte Secondary Capture",
    "1.2.840.10008.5.1.4.1.1.7.3": "Multi-frame Grayscale Word Secondary Capture",
    "1.2.840.10008.5.1.4.1.1.7.4": "Multi-frame True Color Secondary Capture",
}


def is_dicom(path: str | os.PathLike[str], head: bytes | None = None) -> bool:
    """A .dcm/.dicom name, or the 'DICM' magic at byte 128 (camera exports often have no suffix).
    ``head``: the file's first bytes when the caller has read them already."""
    p = Path(path)
    if p.suffix.lower() in DICOM_SUFFIXES:
        return True
    if head is None:
        if not p.is_file():  # a FIFO would block here; the reader reports what it is
            return False
        try:
            with p.open("rb") as fh:
                head = fh.read(132)
        except OSError:
            return False
    return head[128:132] == b"DICM"


@dataclass
class DicomImage:
    image: np.ndarray  # float32 RGB [0, 1]
    depth: int  # 8 or 16
    dataset: Any  # pydicom Dataset without its pixel data (kept for the derived instance)
    sop_class: str


def _pydicom() -> Any:
    try:
        import pydicom
    except ImportError:
        raise ImageReadError("DICOM input needs pydicom: pip install 'ftrt[dicom]'") from None
    return pydicom


def read_dicom(path: str | os.PathLike[str]) -> DicomImage:
    pydicom = _pydicom()
    path = Path(path)
    check_regular_file(path)
    try:
        ds = pydicom.dcmread(path)
    except Exception as exc:  # pydicom raises many types; the message must not echo element values
        raise ImageReadError(f"{path}: not a readable DICOM file ({type(exc).__name__})") from None
    sop = str(ds.get("SOPClassUID", ""))
    if sop not in PHOTO_SOP_CLASSES:
        raise ImageReadError(f"{path}: DICOM SOP class {sop or '(none)'} is not a photograph "
                             f"(ophthalmic photography, VL photographic or secondary capture)")
    if "PixelData" not in ds:
        raise ImageReadError(f"{path}: DICOM file has no pixel data")
    _check_size(ds, path)
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    try:
        arr = ds.pixel_array
    except Exception as exc:
        name = getattr(ts, "name", str(ts))
        if ts is not None and getattr(ts, "is_compressed", False):
            hint = "compressed images need the pylibjpeg plugins (pip install 'ftrt[dicom]')"
        else:
            hint = "the pixel data is truncated or does not match Rows, Columns and Bits Allocated"
        raise ImageReadError(f"{path}: cannot decode DICOM pixel data ({name}: {type(exc).__name__}); {hint}") from None
    image, depth = _to_float_rgb(ds, arr, path)
    for kw in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
        if kw in ds:
            delattr(ds, kw)  # decoded above; the kept dataset only feeds the derived instance's attributes
    return DicomImage(image, depth, dataset=ds, sop_class=sop)


def _int(ds: Any, keyword: str, default: int) -> int:
    try:
        return int(ds.get(keyword, default) or default)
    except (TypeError, ValueError):
        return default


def _check_size(ds: Any, path: Path) -> None:
    """Refuse from the header, before any pixel is decoded: too many pixels, or several frames."""
    from ftrt.io.images import MAX_PIXELS

    rows, cols = _int(ds, "Rows", 0), _int(ds, "Columns", 0)
    frames = _int(ds, "NumberOfFrames", 1)
    if rows <= 0 or cols <= 0:
        raise ImageReadError(f"{path}: DICOM header has no valid Rows / Columns")
    if frames > 1:
        raise ImageReadError(f"{path}: multi-frame DICOM ({frames} frames) is not a single photograph")
    if rows * cols > MAX_PIXELS:
        raise ImageReadError(f"{path}: header claims {cols}x{rows} pixels ({rows * cols / 1e6:.0f} MP), "
                             f"above the {MAX_PIXELS / 1e6:.0f} MP limit")


def _to_float_rgb(ds: Any, arr: np.ndarray, path: Path) -> tuple[np.ndarray, int]:
    pi = str(ds.get("PhotometricInterpretation", ""))
    bits = min(max(_int(ds, "BitsStored", 8), 1), 16)
    maxv = float(2**bits - 1)
    if _int(ds, "PixelRepresentation", 0) == 1:
        # Two's complement: shift [-2^(b-1), 2^(b-1) - 1] to [0, 2^b - 1] so negatives keep their order.
        arr = arr.astype(np.float32) + np.float32(2 ** (bits - 1))
    if pi.startswith("YBR"):
        # pydicom's pixel_array returns RGB for every YBR photometric interpretation and transfer syntax
        # (pydicom >= 3: as_rgb); converting again turned a red fundus green.
        pi = "RGB"
    if pi in ("MONOCHROME1", "MONOCHROME2"):
        if arr.ndim != 2:
            raise ImageReadError(f"{path}: unexpected grey pixel array shape {arr.shape}")
        arr = arr.astype(np.float32)
        if pi == "MONOCHROME1":
            arr = maxv - arr
        arr = np.repeat(arr[..., None], 3, axis=2)
    elif pi == "RGB":
        if arr.ndim != 3 or arr.shape[2] != 3:
            raise ImageReadError(f"{path}: unexpected colour pixel array shape {arr.shape}")
        arr = arr.astype(np.float32)
    else:
        raise ImageReadError(f"{path}: photometric interpretation {pi or '(none)'} is not supported")
    return np.clip(arr / maxv, 0, 1).astype(np.float32), 16 if bits > 8 else 8


def derived_uids(ds: Any, model_id: str) -> tuple[str, str]:
    """(series UID, SOP instance UID) of the restored instance: deterministic in (original, model)."""
    from pydicom.uid import generate_uid

    series = generate_uid(entropy_srcs=["ftrt-series", str(ds.get("SeriesInstanceUID", "")), model_id])
    instance = generate_uid(entropy_srcs=["ftrt-instance", str(ds.get("SOPInstanceUID", "")), model_id])
    return str(series), str(instance)


def write_derived(path: str | os.PathLike[str], img: np.ndarray, source: DicomImage, model_id: str,
                  description: str) -> Path:
    """Write ``img`` (float RGB [0, 1]) as a new instance derived from ``source`` (atomically)."""
    _pydicom()
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID

    src = source.dataset
    missing = [kw for kw in ("SOPClassUID", "SOPInstanceUID") if not str(src.get(kw, "") or "")]
    if missing:
        raise ImageReadError(f"{path}: cannot derive a DICOM instance, the source has no {' or '.join(missing)}; "
                             "write an image instead (--dicom-out png)")
    ds = copy.deepcopy(src)
    series_uid, sop_uid = derived_uids(src, model_id)
    # The SOP class fixes the depth for ophthalmic photography; other classes keep the source's.
    depth = {OP_8BIT: 8, OP_16BIT: 16}.get(source.sop_class, source.depth)
    maxv = 65535 if depth == 16 else 255
    arr = np.clip(np.rint(img * maxv), 0, maxv).astype(np.uint16 if depth == 16 else np.uint8)
    for kw in ("PlanarConfiguration", "LossyImageCompressionRatio", "LossyImageCompressionMethod",
               "ICCProfile", "PixelPaddingValue"):
        if kw in ds:
            delattr(ds, kw)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = src.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.set_pixel_data(arr, "RGB", depth, generate_instance_uid=False)
    ds.SOPInstanceUID = sop_uid
    ds.SeriesInstanceUID = series_uid
    try:
        ds.SeriesNumber = int(src.get("SeriesNumber") or 0) + 1000
    except (TypeError, ValueError):
        ds.SeriesNumber = 1000
    raw_type = src.get("ImageType") or []
    # A single-valued ImageType is a str: listing it would spell it out letter by letter.
    image_type = [str(raw_type)] if isinstance(raw_type, str) else [str(v) for v in raw_type]
    ds.ImageType = ["DERIVED", "SECONDARY", *image_type[2:]]
    ds.SeriesDescription = description[:64]
    ds.DerivationDescription = description[:1024]
    # LossyImageCompression is copied with the rest: a restored copy of a lossy image stays lossy in its history.
    now = datetime.now()
    ds.ContentDate, ds.ContentTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds.InstanceCreationDate, ds.InstanceCreationTime = ds.ContentDate, ds.ContentTime
    ref = Dataset()
    ref.ReferencedSOPClassUID = src.SOPClassUID
    ref.ReferencedSOPInstanceUID = src.SOPInstanceUID
    ds.SourceImageSequence = [ref]
    ds.BurnedInAnnotation = str(src.get("BurnedInAnnotation", "NO"))
    path = Path(path)

    def save(tmp: str) -> None:
        ds.save_as(tmp, enforce_file_format=True)

    atomic_write(path, save)
    return path
