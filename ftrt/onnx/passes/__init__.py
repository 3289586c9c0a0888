"""Load-time graph rewrites for ONNX Runtime's blocked CPU kernels, one module per rewrite; ``ftrt.onnx.cpu_layout``
runs them as one pass list."""
