"""Where model files live: shipped ones by name (inside the package), anything else by path."""

from __future__ import annotations

from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
DEFAULT_MODEL = "res-s"


def shipped_models() -> list[str]:
    return sorted({p.stem for p in WEIGHTS_DIR.glob("*.onnx")} | {p.stem for p in WEIGHTS_DIR.glob("*.safetensors")})


def resolve_model(name_or_path: str, kind: str) -> Path:
    """A path to a model file of ``kind`` ('onnx' or 'safetensors') for a shipped name or a path."""
    p = Path(name_or_path)
    if p.suffix in (".onnx", ".safetensors", ".engine", ".plan"):
        if not p.is_file():
            raise FileNotFoundError(f"{p}: no such model file")
        return p
    shipped = WEIGHTS_DIR / f"{name_or_path}.{kind}"
    if shipped.is_file():
        return shipped
    raise FileNotFoundError(
        f"no {kind} model named {name_or_path!r} (shipped: {', '.join(shipped_models()) or 'none'}); give a file path")
