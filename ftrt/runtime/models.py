"""Where model files live: shipped ones by name (inside the package), anything else by path.

The one resolver for every kind of model file (ONNX, safetensors weights, TensorRT engines), used by the
runtime's backends and by the PyTorch side alike.
"""

from __future__ import annotations

from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
DEFAULT_MODEL = "dn-res-s"
SUFFIXES = {"onnx": (".onnx",), "safetensors": (".safetensors",), "engine": (".engine", ".plan")}


def shipped_models(kind: str | None = None) -> list[str]:
    """Names of the shipped models, of one file kind or of any."""
    kinds = [kind] if kind else list(SUFFIXES)
    return sorted({p.stem for k in kinds for s in SUFFIXES[k] for p in WEIGHTS_DIR.glob(f"*{s}")})


def resolve_model(name_or_path: str | Path, kind: str) -> Path:
    """A path to a model file of ``kind`` ('onnx', 'safetensors' or 'engine') for a shipped name or a path;
    for safetensors also a training run folder (its final weights, else the last checkpoint's EMA)."""
    if kind not in SUFFIXES:
        raise ValueError(f"unknown model file kind {kind!r}")
    p = Path(name_or_path)
    if p.suffix in (".onnx", ".safetensors", ".engine", ".plan"):
        if not p.is_file():
            raise FileNotFoundError(f"{p}: no such model file")
        if p.suffix not in SUFFIXES[kind]:
            hint = {"onnx": "ONNX Runtime and OpenVINO run ONNX files: export the weights (`ftrt export --model "
                            f"{p} -o MODEL.onnx`) or use --backend torch",
                    "safetensors": "PyTorch runs .safetensors weights: give those, or another backend for this file",
                    "engine": "TensorRT runs engines: build one (`ftrt build-engine MODEL.onnx -o OUT.engine`)"}[kind]
            raise ValueError(f"{p}: a {p.suffix} file does not fit this backend; {hint}")
        return p
    if kind == "safetensors" and p.is_dir():
        for candidate in (p / "final.safetensors", p / "last" / "ema.safetensors", p / "ema.safetensors"):
            if candidate.is_file():
                return candidate
        raise FileNotFoundError(f"{p}: a folder without final.safetensors or last/ema.safetensors")
    for suffix in SUFFIXES[kind]:
        shipped = WEIGHTS_DIR / f"{name_or_path}{suffix}"
        if shipped.is_file():
            return shipped
    if kind == "engine":
        raise FileNotFoundError(f"no TensorRT engine named {str(name_or_path)!r}: ftrt ships none (engines are built "
                                "for one GPU and TensorRT version); build one with `ftrt build-engine MODEL.onnx -o "
                                "OUT.engine` and pass its path")
    word = {"onnx": "ONNX models", "safetensors": "weights"}[kind]
    known = ", ".join(shipped_models(kind)) or "none"
    raise FileNotFoundError(f"no {word[:-1] if kind == 'onnx' else word} named {str(name_or_path)!r} "
                            f"(shipped {word}: {known}); give a file path")
