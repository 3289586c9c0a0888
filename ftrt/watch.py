"""``ftrt watch``: restore each photograph that lands in a camera folder, exactly once, restart-safe.

A file is taken only when complete: its size and mtime are unchanged across
one poll interval. A journal (sqlite, in the output folder) records every file
by (name, size, mtime): a file is marked ``processing`` before work and
``done``/``failed`` after, so a restart after ``kill -9`` redoes at most the one
file that was in flight (its output is written atomically under a fixed name,
so redoing it never makes a second output). Originals are only ever read.
SIGTERM/SIGINT finish the current file and stop.
"""

from __future__ import annotations

import signal
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ftrt import __version__
from ftrt.io import IMAGE_SUFFIXES, ImageReadError, read_image, write_image, write_json_atomic
from ftrt.io.dicom import is_dicom, read_dicom, write_derived

JOURNAL = ".ftrt-watch.sqlite"


class Journal:
    def __init__(self, out_dir: Path) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(out_dir / JOURNAL, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("""CREATE TABLE IF NOT EXISTS files (
            name TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, status TEXT, output TEXT, error TEXT,
            updated REAL)""")

    def state(self, name: str) -> tuple[int, int, str] | None:
        row = self.db.execute("SELECT size, mtime_ns, status FROM files WHERE name=?", (name,)).fetchone()
        return (int(row[0]), int(row[1]), str(row[2])) if row else None

    def mark(self, name: str, size: int, mtime_ns: int, status: str, output: str | None = None,
             error: str | None = None) -> None:
        self.db.execute("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (name, size, mtime_ns, status, output, error, time.time()))

    def interrupted(self) -> list[str]:
        """Files a killed run left marked ``processing``."""
        return [str(r[0]) for r in self.db.execute("SELECT name FROM files WHERE status='processing'")]

    def counts(self) -> dict[str, int]:
        return {s: int(n) for s, n in self.db.execute("SELECT status, COUNT(*) FROM files GROUP BY status")}

    def errors(self, limit: int = 10) -> list[tuple[str, str]]:
        return [(str(a), str(b)) for a, b in self.db.execute(
            "SELECT name, error FROM files WHERE status='failed' ORDER BY updated DESC LIMIT ?", (limit,))]

    def close(self) -> None:
        self.db.close()


@dataclass
class WatchStats:
    done: int = 0
    failed: int = 0


def _candidates(in_dir: Path) -> list[Path]:
    # Hidden and temporary names are how cameras and copy tools stage partial files. DICOM exports
    # often carry no suffix at all: those are recognised by their 'DICM' preamble.
    return sorted(p for p in in_dir.iterdir() if p.is_file() and not p.name.startswith(".")
                  and (p.suffix.lower() in IMAGE_SUFFIXES or (not p.suffix and is_dicom(p))))


def output_name(path: Path, suffix: str = ".png", tag: str = "restored") -> str:
    """One output per input *name* (a.jpg and a.png do not collide): ``<name>.<tag><suffix>``."""
    return f"{path.stem}{path.suffix.lower()}.{tag}{suffix}"


def _outputs(path: Path) -> dict[str, str]:
    """Every file the watcher may write for ``path``, by role (a restart cleans up the temps of all of them)."""
    return {"image": output_name(path), "dicom": output_name(path, ".dcm"), "json": output_name(path, ".json"),
            "compare": output_name(path, ".png", tag="compare")}


class Watcher:
    """``process(image) -> (restored image, FOV mask, sidecar fields)``; ``model_id`` names the model in
    derived DICOM instances; ``dicom_out`` "dicom" writes DICOM inputs back as DICOM, "png" as PNG."""

    def __init__(self, in_dir: str | Path, out_dir: str | Path,
                 process: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, dict[str, Any]]],
                 poll: float = 2.0, log: Callable[[str], None] = print, model_id: str = "",
                 dicom_out: str = "dicom", side_by_side: bool = False) -> None:
        self.in_dir, self.out_dir = Path(in_dir), Path(out_dir)
        if self.in_dir.resolve() == self.out_dir.resolve():
            raise ValueError("the output folder must not be the watched folder")
        if not self.in_dir.is_dir():
            raise ValueError(f"{self.in_dir}: not a folder")
        if dicom_out not in ("dicom", "png"):
            raise ValueError(f"dicom_out must be 'dicom' or 'png', not {dicom_out!r}")
        self.process, self.poll, self.log = process, poll, log
        self.model_id, self.dicom_out, self.side_by_side = model_id, dicom_out, side_by_side
        self.journal = Journal(self.out_dir)
        self.stop = False
        self.seen: dict[str, tuple[int, int]] = {}  # name -> (size, mtime) at the previous scan
        self.stats = WatchStats()

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.log(f"signal {signum}: finishing the current file, then stopping")
        self.stop = True

    def scan_once(self) -> int:
        """Process every file that is complete and not yet journalled; returns how many were handled."""
        handled = 0
        for path in _candidates(self.in_dir):
            if self.stop:
                break
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            key = (st.st_size, st.st_mtime_ns)
            prev = self.journal.state(path.name)
            if prev is not None and prev[:2] == key and prev[2] in ("done", "failed"):
                continue
            if self.seen.get(path.name) != key:
                self.seen[path.name] = key  # first sight or still growing: look again next poll
                continue
            self._handle(path, key)
            handled += 1
        return handled

    def _handle(self, path: Path, key: tuple[int, int]) -> None:
        self.journal.mark(path.name, *key, status="processing")
        try:
            source = read_dicom(path) if is_dicom(path) else None
            img, depth = (source.image, source.depth) if source is not None else read_image(path)
            t0 = time.perf_counter()
            result, mask, info = self.process(img)
            names = _outputs(path)
            if source is not None and self.dicom_out == "dicom":
                out = self.out_dir / names["dicom"]
                write_derived(out, result, source, self.model_id,
                              f"ftrt {__version__} restoration, model {self.model_id}")
            else:
                out = self.out_dir / names["image"]
                write_image(out, result, depth)
            extra: dict[str, Any] = {}
            if self.side_by_side:
                compare = self.out_dir / names["compare"]
                write_image(compare, np.concatenate([img * mask[..., None], result], axis=1), depth)
                extra["side_by_side"] = compare.name
            write_json_atomic(self.out_dir / names["json"],
                              {"input": path.name, "output": out.name, "dicom": source is not None,
                               "seconds": round(time.perf_counter() - t0, 3), **extra, **info})
            self.journal.mark(path.name, *key, status="done", output=out.name)
            self.stats.done += 1
            self.log(f"restored {path.name} -> {out.name}")
        except (ImageReadError, ValueError, OSError, MemoryError) as exc:
            msg = str(exc) if path.name in str(exc) else f"{path.name}: {exc}"
            self.journal.mark(path.name, *key, status="failed", error=msg)
            self.stats.failed += 1
            self.log(f"failed: {msg}")

    def _remove_orphaned_temps(self) -> None:
        """A run killed mid-write leaves the temp file of an atomic write (``.<output>.<random>.tmp``) beside
        its outputs; the file it was writing is redone from the start, so the temp is only litter."""
        for name in self.journal.interrupted():
            for out in _outputs(Path(name)).values():
                for tmp in self.out_dir.glob(f".{out}.*.tmp"):
                    tmp.unlink(missing_ok=True)
                    self.log(f"removed {tmp.name}, left by an interrupted run")

    def run(self, once: bool = False) -> WatchStats:
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            self._remove_orphaned_temps()
            self.scan_once()
            while not self.stop:
                time.sleep(self.poll)
                handled = self.scan_once()
                if once and handled == 0 and not self._growing():
                    break
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            self.journal.close()
        return self.stats

    def _growing(self) -> bool:
        """Files seen but not yet stable (``--once`` waits for them)."""
        for path in _candidates(self.in_dir):
            prev = self.journal.state(path.name)
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            key = (st.st_size, st.st_mtime_ns)
            if prev is None or prev[:2] != key:
                return True
        return False


def status(out_dir: str | Path) -> dict[str, Any]:
    p = Path(out_dir) / JOURNAL
    if not p.exists():
        raise ValueError(f"{out_dir}: no watch journal ({JOURNAL}) here")
    j = Journal(Path(out_dir))
    try:
        return {"counts": j.counts(), "last_errors": j.errors()}
    finally:
        j.close()
