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

from ftrt.io import IMAGE_SUFFIXES, write_json_atomic
from ftrt.io.dicom import is_dicom
from ftrt.jobs import RestoreJob

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


def watch_names(path: Path, role: str, suffix: str) -> str:
    """The per-file job's naming policy here: ``<name>.restored<suffix>`` and ``<name>.compare<suffix>``."""
    return output_name(path, suffix, tag="compare" if role == "compare" else "restored")


def _outputs(path: Path) -> dict[str, str]:
    """Every file the watcher may write for ``path``, by role (a restart cleans up the temps of all of them)."""
    return {"image": output_name(path), "dicom": output_name(path, ".dcm"), "json": output_name(path, ".json"),
            "compare": output_name(path, ".png", tag="compare")}


class Watcher:
    """Runs the per-file job (:class:`ftrt.jobs.RestoreJob`) on every complete new file of ``in_dir``.

    ``job``: the job, or ``process(image) -> (restored image, FOV mask, sidecar fields)`` for a job around
    that function; ``record``: fields every sidecar carries (the model, backend and precision);
    ``model_id`` names the model in derived DICOM instances; ``dicom_out`` "dicom" writes DICOM inputs
    back as DICOM, "png" as PNG."""

    def __init__(self, in_dir: str | Path, out_dir: str | Path,
                 job: RestoreJob | Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, dict[str, Any]]],
                 poll: float = 2.0, log: Callable[[str], None] = print, model_id: str = "",
                 dicom_out: str = "dicom", side_by_side: bool = False,
                 record: dict[str, Any] | None = None) -> None:
        self.in_dir, self.out_dir = Path(in_dir), Path(out_dir)
        if self.in_dir.resolve() == self.out_dir.resolve():
            raise ValueError("the output folder must not be the watched folder")
        if not self.in_dir.is_dir():
            raise ValueError(f"{self.in_dir}: not a folder")
        if isinstance(job, RestoreJob):
            self.job = job
        else:
            self.job = RestoreJob(None, self.out_dir, watch_names, dicom_out=dicom_out, model_id=model_id,
                                  side_by_side=side_by_side, process=job)
        self.poll, self.log, self.record = poll, log, dict(record or {})
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
        t0 = time.perf_counter()
        rec = self.job.run(path)
        if rec.status == "ok" and rec.output is not None:
            out = Path(rec.output)
            try:
                write_json_atomic(self.out_dir / output_name(path, ".json"),
                                  {"input": path.name, "output": out.name,
                                   "seconds": round(time.perf_counter() - t0, 3), **self.record, **rec.fields})
            except OSError as exc:
                rec.status, rec.error = "error", f"{path.name}: sidecar not written ({exc})"
        if rec.status == "ok" and rec.output is not None:
            self.journal.mark(path.name, *key, status="done", output=Path(rec.output).name)
            self.stats.done += 1
            self.log(f"restored {path.name} -> {Path(rec.output).name}")
        else:
            msg = rec.error or rec.reason or "not restored"
            msg = msg.replace(str(path), path.name)
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
