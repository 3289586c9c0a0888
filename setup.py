from pathlib import Path

from setuptools import find_packages, setup

version = {}
exec(Path("ftrt/__init__.py").read_text(), version)

setup(
    name="ftrt",
    version=version["__version__"],
    description="Fundus-image restoration: PyTorch training to verified ONNX Runtime / TensorRT inference",
    long_description=Path("README.md").read_text() if Path("README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(exclude=["tests", "tests.*", "benchmarks"]),
    package_data={"ftrt": ["weights/*.safetensors", "weights/*.onnx", "weights/*.json", "weights/*.jsonl", "weights/*.md"]},
    # The runtime: numpy, OpenCV and ONNX Runtime (plus onnx, optional at run time); never torch.
    install_requires=[
        "numpy>=1.24",
        "opencv-python-headless>=4.8",
        "onnxruntime>=1.17",
        # Only to widen grouped convs for ORT's blocked CPU kernels at load time (1.2-1.3x on AVX-512);
        # without it the runtime still runs, the file as exported.
        "onnx>=1.16",
        "click>=8.1",
        "tqdm>=4.60",
        "pyyaml>=6.0",
    ],
    extras_require={
        # torch is pinned: an unpinned torch pulls a multi-GB CUDA build on machines that only need the CPU one.
        "train": ["torch==2.13.0", "safetensors>=0.4"],
        "export": ["onnx>=1.16", "onnxscript>=0.1", "onnxslim>=0.1.40", "onnxconverter-common>=1.14"],
        "samples": ["scikit-image>=0.22"],
        "plot": ["matplotlib>=3.7"],
        # OpenVINO's CPU runtime: the fastest CPU backend for the restorer on x86 (installs beside onnxruntime).
        "openvino": ["openvino>=2024.0"],
        # DICOM in/out; the pylibjpeg plugins decode JPEG, JPEG-LS and JPEG 2000 compressed pixel data.
        "dicom": ["pydicom>=3.0", "pylibjpeg>=2.0", "pylibjpeg-libjpeg>=2.1", "pylibjpeg-openjpeg>=2.3"],
        # TensorRT engines: tensorrt wheels come from NVIDIA's index (x86-64); Jetson uses JetPack's TensorRT.
        "trt": ["tensorrt>=8.6", "cuda-python>=12.0"],
        # CUDA from Python without TensorRT (ORT's CUDA/TensorRT providers come with onnxruntime-gpu, which
        # replaces onnxruntime: install it on its own, never beside it).
        "gpu": ["cuda-python>=12.0"],
        # The camera side of `ftrt serve` (--server): Triton's v2 clients. The server itself (nvidia-pytriton)
        # pins numpy < 2 and lives in its own environment (docs/serving.md).
        "serving": ["tritonclient[http,grpc]>=2.40"],
        "typecheck": ["mypy>=1.10", "tensorrt-stubs", "cuda-python>=12.0"],
        "dev": ["pytest>=8", "scikit-image>=0.22", "safetensors>=0.4", "pydicom>=3.0", "pylibjpeg>=2.0",
                "pylibjpeg-libjpeg>=2.1", "pylibjpeg-openjpeg>=2.3", "openvino>=2024.0",
                "tritonclient[http,grpc]>=2.40"],
    },
    entry_points={"console_scripts": ["ftrt=ftrt.cli:main"]},
)
