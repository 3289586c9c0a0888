"""Every ONNX graph edit ftrt makes, torch-free: metadata, mixed FP16, graph helpers and the CPU layout passes.

Needs only the ``onnx`` package (numpy and onnxruntime for the FP16 check). ``ftrt.export`` writes the graph
from PyTorch; everything after that lives here, so a runtime-only install can convert and inspect models.
Importing this package imports nothing heavy; its modules import ``onnx`` themselves.
"""
