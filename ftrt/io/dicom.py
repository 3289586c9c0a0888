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
from ftrt.io.files import ImageReadError

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
    try:
        arr = ds.pixel_array
    except Exception as exc:
        ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        name = getattr(ts, "name", str(ts))
        raise ImageReadError(f"{path}: cannot decode DICOM pixel data ({name}: {type(exc).__name__}); "
                             "compressed images need the pylibjpeg plugins (pip install 'ftrt[dicom]')") from None
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise ImageReadError(f"{path}: multi-frame DICOM ({frames} frames) is not a single photograph")
    image, depth = _to_float_rgb(ds, arr, path)
    for kw in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
        if kw in ds:
            delattr(ds, kw)  # decoded above; the kept dataset only feeds the derived instance's attributes
    return DicomImage(image, depth, dataset=ds, sop_class=sop)


def _to_float_rgb(ds: Any, arr: np.ndarray, path: Path) -> tuple[np.ndarray, int]:
    from pydicom.pixels import convert_color_space

    pi = str(ds.get("PhotometricInterpretation", ""))
    bits = int(ds.get("BitsStored", 8))
    maxv = float(2**bits - 1)
    if pi.startswith("YBR"):
        # pixel_array already converts YCbCr to RGB for most codecs; the uncompressed YBR_FULL case remains.
        if pi == "YBR_FULL" and not ds.file_meta.TransferSyntaxUID.is_compressed:
            arr = convert_color_space(arr, pi, "RGB")
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
    image_type = [str(v) for v in (src.get("ImageType") or [])]
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
