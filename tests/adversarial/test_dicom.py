"""Hostile and unusual DICOM: sizes refused from the header, colours and signs kept, odd attributes survived."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ftrt.io import ImageReadError
from ftrt.io.dicom import read_dicom, write_derived
from tests.io.dicom_samples import make_photo_dicom

pydicom = pytest.importorskip("pydicom")


def _red() -> np.ndarray:
    img = np.zeros((32, 40, 3), np.float32)
    img[..., 0], img[..., 1], img[..., 2] = 0.8, 0.2, 0.1
    return img


def _edit(path: Path, **attrs: object) -> Path:
    ds = pydicom.dcmread(path)
    for k, v in attrs.items():
        if v is None:
            delattr(ds, k)
        else:
            setattr(ds, k, v)
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.parametrize("attrs, words", [
    ({"Rows": 10500, "Columns": 10500}, "above the 100 MP limit"),
    ({"NumberOfFrames": 2}, "multi-frame"),
    ({"Rows": 0}, "no valid Rows"),
])
def test_header_checks_come_before_decoding(tmp_path: Path, attrs: dict, words: str) -> None:
    p = _edit(make_photo_dicom(tmp_path / "x.dcm", _red()), **attrs)
    with pytest.raises(ImageReadError, match=words) as err:
        read_dicom(p)
    assert str(p) in str(err.value)


def test_uncompressed_ybr_full_stays_red(tmp_path: Path) -> None:
    from pydicom.pixels import convert_color_space

    p = make_photo_dicom(tmp_path / "ybr.dcm", _red())
    ds = pydicom.dcmread(p)
    rgb = np.clip(np.rint(_red() * 255), 0, 255).astype(np.uint8)
    ds.PhotometricInterpretation = "YBR_FULL"
    ds.PixelData = convert_color_space(rgb, "RGB", "YBR_FULL").tobytes()
    ds.save_as(p, enforce_file_format=True)
    px = read_dicom(p).image[5, 5]
    assert np.allclose(px, [0.8, 0.2, 0.1], atol=0.02)


def test_signed_16_bit_grey_keeps_its_negatives_in_order(tmp_path: Path) -> None:
    p = make_photo_dicom(tmp_path / "s16.dcm", _red())
    ds = pydicom.dcmread(p)
    a = np.linspace(-1000, 1000, 32 * 40).reshape(32, 40).astype(np.int16)
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    del ds.PlanarConfiguration
    ds.PixelData = a.tobytes()
    ds.save_as(p, enforce_file_format=True)
    img = read_dicom(p).image[..., 0]
    assert np.all(np.diff(img.ravel()) >= 0) and img.ravel()[0] < img.ravel()[-1]  # ordered as stored
    assert 0.48 < img.min() < img.max() < 0.52  # -1000..1000 around the middle of the 16-bit range


def test_single_valued_image_type_is_not_spelled_out(tmp_path: Path) -> None:
    p = _edit(make_photo_dicom(tmp_path / "t.dcm", _red()), ImageType="ORIGINAL")
    src = read_dicom(p)
    out = write_derived(tmp_path / "d.dcm", src.image, src, "model", "test")
    assert list(pydicom.dcmread(out).ImageType) == ["DERIVED", "SECONDARY"]


def test_source_without_uids_fails_the_derived_write_by_name(tmp_path: Path) -> None:
    p = _edit(make_photo_dicom(tmp_path / "nouid.dcm", _red()), SOPInstanceUID=None)
    src = read_dicom(p)
    with pytest.raises(ImageReadError, match="no SOPInstanceUID") as err:
        write_derived(tmp_path / "d.dcm", src.image, src, "model", "test")
    assert str(tmp_path / "d.dcm") in str(err.value)


def test_truncated_uncompressed_pixels_get_the_right_hint(tmp_path: Path) -> None:
    p = make_photo_dicom(tmp_path / "short.dcm", _red())
    ds = pydicom.dcmread(p)
    ds.PixelData = ds.PixelData[:100]
    ds.save_as(p, enforce_file_format=True)
    with pytest.raises(ImageReadError) as err:
        read_dicom(p)
    assert "truncated or does not match" in str(err.value) and "pylibjpeg" not in str(err.value)


def test_not_dicom_at_all(tmp_path: Path) -> None:
    p = tmp_path / "junk.dcm"
    p.write_bytes(b"\x00" * 64)
    with pytest.raises(ImageReadError, match="not a readable DICOM file"):
        read_dicom(p)
