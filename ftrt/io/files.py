"""Expanding INPUTS... (files, folders, globs) and guarding output folders."""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Iterable

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".dcm", ".dicom")


class ImageReadError(ValueError):
    """An input file is not a readable image."""


class InputError(ValueError):
    """The command line names inputs or outputs that cannot be used."""


def check_regular_file(path: Path) -> None:
    """Refuse what is not a plain file before opening it: a FIFO would block the reader forever, a device
    could stream without end, a broken link has nothing behind it."""
    import stat

    try:
        st = os.stat(path)
    except FileNotFoundError:
        gone = "broken symbolic link" if os.path.islink(path) else "file no longer exists"
        raise ImageReadError(f"{path}: {gone}") from None
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot read file ({exc.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        kind = "a folder" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode) else \
            "a socket" if stat.S_ISSOCK(st.st_mode) else "a device"
        raise ImageReadError(f"{path}: not a regular file ({kind})")


def collect_inputs(inputs: Iterable[str], suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> list[Path]:
    """Files, folders (non-recursive, image suffixes only) and globs, sorted and deduplicated.

    Files named explicitly are kept whatever their suffix, so an unreadable file
    is reported by the reader rather than silently skipped.
    """
    found: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            # Everything with an image suffix but a folder: a FIFO, a broken link or a device named .png is
            # reported by the reader as a failed file, not passed over in silence.
            found.extend(sorted(c for c in p.iterdir() if not c.is_dir() and c.suffix.lower() in suffixes))
        elif (p.exists() or p.is_symlink()) and not p.is_dir():  # files, FIFOs, broken links: the reader judges
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
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"output folder {out_dir}: cannot create it ({exc.strerror})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise InputError(f"output folder {out_dir}: not writable (read-only file system or no permission)")
    return out


# Most file systems allow 255 bytes per name; the margin leaves room for a writer's own suffixes.
NAME_MAX = 240


def fit_name(name: str, ending: str = "") -> str:
    """``name + ending`` shortened to NAME_MAX bytes when needed: the name is cut and a hash of the whole
    name added, so two long names that share a beginning still differ, and the same name always maps
    to the same result."""
    full = name + ending
    if len(os.fsencode(full)) <= NAME_MAX:
        return full
    import hashlib

    tag = hashlib.sha1(os.fsencode(name)).hexdigest()[:10]
    room = NAME_MAX - len(os.fsencode(ending)) - len(tag) - 1
    cut = os.fsencode(name)[:room].decode("utf-8", "ignore")
    return f"{cut}~{tag}{ending}"


def skipped_in_folders(inputs: Iterable[str], suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> list[Path]:
    """Files inside named folders that :func:`collect_inputs` passes over (not image suffixes)."""
    skipped: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            skipped.extend(sorted(c for c in p.iterdir()
                                  if c.is_file() and c.suffix.lower() not in suffixes and not c.name.startswith(".")))
    return skipped
