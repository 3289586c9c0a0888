"""Helpers shared by the benchmark drivers: the machine line and writing a Markdown report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# One timing loop and one machine line for `ftrt profile` and the drivers.
from ftrt.profile import cpu_name  # noqa: F401
from ftrt.profile import time_calls as time_ms  # noqa: F401


def module_version(module: str) -> str:
    try:
        return str(__import__(module).__version__)
    except ImportError:
        return "not installed"


def preset_model(name: str):  # noqa: ANN201 - (torch module, metadata, shipped)
    """The preset in eval mode with its shipped weights and their metadata, else freshly initialised
    (speed does not depend on the weights; accuracy figures say which it was)."""
    from ftrt.models import build_model
    from ftrt.models.pretrained import load_model, shipped_weights

    if shipped_weights(name):
        model, meta = load_model(name)
        return model, meta, True
    return build_model(name).eval(), {}, False


def invocation() -> str:
    """The command line that ran this driver, as a report quotes it."""
    return " ".join(["python", f"benchmarks/{Path(sys.argv[0]).name}", *sys.argv[1:]])


def write_report(out: str | Path, lines: list[str]) -> str:
    text = "\n".join(lines) + "\n"
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(text)
    print(text)
    return text


def drive_split_args(description: str, default_split: str,
                     report: str) -> tuple[argparse.Namespace, Path] | None:
    """The command line of a driver that restores one DRIVE split (--data, --models, --split, --limit, --out),
    parsed, with that split's folder; None (after one error line) where the split is not there."""
    root = Path(__file__).resolve().parent.parent
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--data", default=str(root.parent / "shared" / "data"))
    ap.add_argument("--models", nargs="*", default=["res-s"], help="restorer names or ONNX paths")
    ap.add_argument("--split", choices=["test", "training"], default=default_split)
    ap.add_argument("--limit", type=int, help="only the first N photographs")
    ap.add_argument("--out", default=str(root / "benchmarks" / "results" / report))
    args = ap.parse_args()
    drive = Path(args.data) / "drive" / args.split
    if not (drive / "images").is_dir():
        print(f"DRIVE {args.split} set not found under {drive}", file=sys.stderr)
        return None
    return args, drive
