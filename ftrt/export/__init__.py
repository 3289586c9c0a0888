"""PyTorch -> ONNX export with dynamic H x W, metadata and a parity check (needs torch)."""

from ftrt.export.onnx_export import ExportResult, export_onnx

__all__ = ["ExportResult", "export_onnx"]
