"""Precision decided in the ONNX: INT8 Q/DQ from real fundus images, mixed FP16, and the accuracy report."""

from ftrt.precision.calibrate import PrecisionResult, calibrate_int8, convert_fp16_model, default_shapes
from ftrt.precision.data import CalibrationDataError

__all__ = ["CalibrationDataError", "PrecisionResult", "calibrate_int8", "convert_fp16_model", "default_shapes"]
