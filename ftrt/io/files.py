"""Expanding INPUTS... (files, folders, globs) and guarding output folders."""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Iterable

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".dcm", ".dicom")


class ImageReadError(ValueError):
    """An input file is not a readable image."""


class InputError(ValueError):
    """The command line names inputs or outputs that cannot be used."""


def collect_inputs(inputs: Iterable[str], suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> list[Path]:
    """Files, folders (non-recursive, image suffixes only) and globs, sorted and deduplicated.

    Files named explicitly are kept whatever their suffix, so an unreadable file
    is reported by the reader rather than silently skipped.
    """
    found: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found.extend(sorted(c for c in p.iterdir() if c.is_file() and c.suffix.lower() in suffixes))
        elif p.is_file():
            found.append(p)
        else:
            matches = sorted(glob.glob(item, recursive=True))
            if not matches:
                raise InputError(f"no such file, folder or glob match: {item}")
            found.extend(Path(m) for m in matches if Path(m).is_file())
    seen: set[Path] = set()
    unique = []
    for p in found:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def ensure_output_dir(out_dir: str | os.PathLike[str], inputs: Iterable[Path]) -> Path:
    """Create OUT_DIR, refusing one that holds any of the inputs (outputs would shadow originals)."""
    out = Path(out_dir).resolve()
    for p in inputs:
        if p.resolve().parent == out:
            raise InputError(f"output folder {out_dir} is an input folder (holds {p.name}); choose another")
    out.mkdir(parents=True, exist_ok=True)
    return out


def skipped_in_folders(inputs: Iterable[str], suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> list[Path]:
    """Files inside named folders that :func:`collect_inputs` passes over (not image suffixes)."""
    skipped: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            skipped.extend(sorted(c for c in p.iterdir()
                                  if c.is_file() and c.suffix.lower() not in suffixes and not c.name.startswith(".")))
    return skipped
