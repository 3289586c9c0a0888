"""Synthetic DICOM photographs for the tests (no DICOM data ships with ftrt)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

PATIENT_NAME = "DOE^JANE^Q"
PATIENT_ID = "PID-7741-XQ"


def make_photo_dicom(path: Path, img: np.ndarray, compressed: bool = False,
                     sop_class: str = "1.2.840.10008.5.1.4.1.1.77.1.5.1") -> Path:
    """An ophthalmic photography (8-bit) instance holding ``img`` (float RGB), with patient data set;
    ``compressed``: JPEG baseline pixel data (YBR_FULL_422), as fundus cameras often store it."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit, ExplicitVRLittleEndian, generate_uid

    arr = np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = PATIENT_NAME, PATIENT_ID, "19600101", "F"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.StudyDate, ds.StudyTime, ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "20261125", "101500", "OP", 3, 1
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.Laterality = "R"
    ds.Rows, ds.Columns = arr.shape[:2]
    ds.SamplesPerPixel, ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 3, 8, 8, 7, 0
    ds.PlanarConfiguration = 0
    ds.BurnedInAnnotation = "NO"
    if compressed:
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(arr, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
        assert ok
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
        ds.PhotometricInterpretation = "YBR_FULL_422"
        ds.LossyImageCompression = "01"
        ds.PixelData = encapsulate([buf.tobytes()])
        ds["PixelData"].VR = "OB"
    else:
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.PhotometricInterpretation = "RGB"
        ds.PixelData = arr.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path
