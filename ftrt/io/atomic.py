"""Atomic writes: a reader never sees a half-written file, and a crash leaves the old file (or none)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def atomic_write(path: str | os.PathLike[str], writer: Callable[[str], object]) -> Path:
    """Call ``writer(tmp_path)`` on a temp file beside ``path``, then rename it over ``path``.

    A reader never sees a half-written file, and a crash leaves the old file (or
    none) instead of a truncated one. The temp file gets the usual permissions
    (mkstemp makes 0600).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The temp name is bounded: a long output name plus mkstemp's suffix must not exceed NAME_MAX.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:64]}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)
        writer(tmp)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def _write_synced(tmp: str, payload: bytes) -> None:
    with open(tmp, "wb") as fh:
        fh.write(payload)
        fh.flush()
        os.fsync(fh.fileno())


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    atomic_write(path, lambda tmp: _write_synced(tmp, payload))


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> Path:
    path = Path(path)
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())
    return path


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    path = Path(path)
    atomic_write_bytes(path, text.encode())
    return path
