"""DICOM in and out: ophthalmic photography read (plain and JPEG-compressed), derived instance written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pydicom")

from tests.io.dicom_samples import PATIENT_ID, PATIENT_NAME, make_photo_dicom  # noqa: E402

from ftrt.io import ImageReadError, read_image  # noqa: E402
from ftrt.io.dicom import derived_uids, is_dicom, read_dicom, write_derived  # noqa: E402
from ftrt.metrics import psnr  # noqa: E402


def test_reads_plain_and_jpeg_compressed_photographs(tmp_path: Path, retina: np.ndarray) -> None:
    plain = read_dicom(make_photo_dicom(tmp_path / "a.dcm", retina))
    assert plain.depth == 8 and plain.image.shape == retina.shape
    assert np.abs(plain.image - retina).max() <= 0.5 / 255 + 1e-6
    jpeg = read_dicom(make_photo_dicom(tmp_path / "b.dcm", retina, compressed=True))  # pylibjpeg decodes it
    assert jpeg.image.shape == retina.shape and psnr(jpeg.image, retina) > 30
    img, depth = read_image(tmp_path / "b.dcm")  # every command reads DICOM through read_image
    assert depth == 8 and np.array_equal(img, jpeg.image)


def test_dicom_without_suffix_is_recognised(tmp_path: Path, retina: np.ndarray) -> None:
    p = make_photo_dicom(tmp_path / "IM000123", retina)
    assert is_dicom(p) and not is_dicom(tmp_path.parent)
    assert read_image(p)[0].shape == retina.shape


def test_derived_instance(tmp_path: Path, retina: np.ndarray) -> None:
    import pydicom

    src = read_dicom(make_photo_dicom(tmp_path / "a.dcm", retina, compressed=True))
    restored = np.clip(retina * 1.1, 0, 1)
    out = write_derived(tmp_path / "out.dcm", restored, src, "res-s@test", "ftrt 0 restoration, model res-s@test")
    ds = pydicom.dcmread(out)
    orig = pydicom.dcmread(tmp_path / "a.dcm")
    assert ds.SOPInstanceUID != orig.SOPInstanceUID and ds.SeriesInstanceUID != orig.SeriesInstanceUID
    assert ds.StudyInstanceUID == orig.StudyInstanceUID and ds.PatientID == PATIENT_ID  # same patient and study
    assert ds.SOPClassUID == orig.SOPClassUID and ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert list(ds.ImageType[:2]) == ["DERIVED", "SECONDARY"] and "ftrt" in ds.SeriesDescription
    assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == orig.SOPInstanceUID
    assert ds.LossyImageCompression == "01"  # derived from a lossy original
    assert ds.PhotometricInterpretation == "RGB" and not ds.file_meta.TransferSyntaxUID.is_compressed
    assert np.abs(read_dicom(out).image - restored).max() <= 0.5 / 255 + 1e-6
    # Re-processing after a crash gives the same instance, a different model a different one.
    assert derived_uids(src.dataset, "res-s@test") == (ds.SeriesInstanceUID, ds.SOPInstanceUID)
    assert derived_uids(src.dataset, "res-l@test")[1] != ds.SOPInstanceUID


def test_bad_dicom_fails_clearly_without_patient_data(tmp_path: Path, retina: np.ndarray) -> None:
    ct = make_photo_dicom(tmp_path / "ct.dcm", retina, sop_class="1.2.840.10008.5.1.4.1.1.2")
    with pytest.raises(ImageReadError, match="not a photograph") as e1:
        read_image(ct)
    good = make_photo_dicom(tmp_path / "ok.dcm", retina).read_bytes()
    (tmp_path / "cut.dcm").write_bytes(good[: len(good) // 2])
    with pytest.raises(ImageReadError) as e2:
        read_image(tmp_path / "cut.dcm")
    for e in (e1, e2):
        msg = str(e.value)
        assert "\n" not in msg and PATIENT_NAME.split("^")[0] not in msg and PATIENT_ID not in msg


def test_restore_cli_reads_dicom(tmp_path: Path, retina: np.ndarray, random_onnx: Path) -> None:
    make_photo_dicom(tmp_path / "eye.dcm", retina, compressed=True)
    r = subprocess.run([sys.executable, "-m", "ftrt.cli", "restore", str(tmp_path / "eye.dcm"), "-o",
                        str(tmp_path / "out"), "--model", str(random_onnx), "--max-side", "64", "--json"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    rec = json.loads(r.stdout.splitlines()[0])
    assert rec["status"] == "ok" and Path(rec["output"]).exists()
    assert PATIENT_ID not in r.stdout + r.stderr


def test_restore_cli_writes_a_derived_dicom_like_watch(tmp_path: Path, retina: np.ndarray, random_onnx: Path) -> None:
    """`ftrt restore --dicom-out dicom` runs the same per-file job as `ftrt watch`: a derived instance out."""
    import pydicom

    (tmp_path / "in").mkdir()
    make_photo_dicom(tmp_path / "in" / "eye.dcm", retina)
    r = subprocess.run([sys.executable, "-m", "ftrt.cli", "restore", str(tmp_path / "in"), "-o", str(tmp_path / "out"),
                        "--model", str(random_onnx), "--max-side", "64", "--dicom-out", "dicom", "--json"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    rec = json.loads(r.stdout.splitlines()[0])
    assert rec["status"] == "ok" and rec["dicom"] and rec["output"].endswith("eye.dcm")
    ds = pydicom.dcmread(rec["output"])
    assert "DERIVED" in list(ds.ImageType) and ds.PatientID == PATIENT_ID and ds.Rows == retina.shape[0]
