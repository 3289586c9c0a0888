"""Every backend name ftrt knows, in one table read by ``open_backend`` and by the CLI's choices.

Kept free of imports so that ``ftrt --help`` lists the backends without loading any runtime.
"""

from __future__ import annotations

# name -> (runtime, what it runs: the model file kind it opens)
BACKEND_TABLE: dict[str, tuple[str, str]] = {
    "auto": ("ONNX Runtime CPU for an .onnx, TensorRT for an .engine/.plan", "onnx"),
    "ort": ("ONNX Runtime, CPU provider, graph laid out for its blocked kernels", "onnx"),
    "ort-cuda": ("ONNX Runtime, CUDA provider", "onnx"),
    "ort-trt": ("ONNX Runtime, TensorRT provider", "onnx"),
    "trt": ("TensorRT engine", "engine"),
    "torch": ("PyTorch eager, CPU (the baseline)", "safetensors"),
    "torch-cuda": ("PyTorch eager, CUDA", "safetensors"),
    "torch-cuda-fp16": ("PyTorch eager, CUDA, FP16", "safetensors"),
    "openvino": ("OpenVINO CPU", "onnx"),
    "openvino-bf16": ("OpenVINO CPU, bf16 inference hint (AMX / AVX-512 BF16)", "onnx"),
}
BACKENDS = tuple(BACKEND_TABLE)
