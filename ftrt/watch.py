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

import glob
import json
import os
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
from ftrt.io.files import fit_name
from ftrt.jobs import RestoreJob, is_transient

JOURNAL = ".ftrt-watch.sqlite"
LOCK = ".ftrt-watch.lock"
# Transient errors (ftrt.jobs.is_transient) are retried after poll * 2**attempts seconds, at most this long.
MAX_BACKOFF = 600.0


def shown(name: str) -> str:
    """A file name as it may appear in a log line or a report: undecodable bytes as \\xNN, control characters
    (a newline that would forge a log line) escaped, everything else as it is."""
    out = []
    for c in name:
        o = ord(c)
        if 0xDC80 <= o <= 0xDCFF:  # a byte the file system name did not decode (surrogateescape)
            out.append(f"\\x{o - 0xDC00:02x}")
        elif not c.isprintable() or 0xD800 <= o <= 0xDFFF:
            out.append(f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}")
        else:
            out.append(c)
    return "".join(out)


def _key(name: str) -> str | bytes:
    """The journal key of a file name: the text where it is valid UTF-8, else its raw bytes (a BLOB never
    equals a TEXT in sqlite, so the two kinds of key cannot collide)."""
    try:
        return name.encode("utf-8").decode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(name)


class JournalDamaged(Exception):
    """The journal file is not a sound sqlite database."""


class Journal:
    COLUMNS = {"attempts": "INTEGER DEFAULT 0", "next_try": "REAL DEFAULT 0"}

    def __init__(self, out_dir: Path) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        self.path = out_dir / JOURNAL
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None)
            check = self.db.execute("PRAGMA quick_check").fetchone()
            if not check or check[0] != "ok":
                self.db.close()
                raise JournalDamaged(str(check[0] if check else "no answer"))
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute("""CREATE TABLE IF NOT EXISTS files (
                name TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, status TEXT, output TEXT, error TEXT,
                updated REAL)""")
            have = {r[1] for r in self.db.execute("PRAGMA table_info(files)")}
            for col, decl in self.COLUMNS.items():
                if col not in have:  # a journal from an earlier ftrt: add what retries need
                    self.db.execute(f"ALTER TABLE files ADD COLUMN {col} {decl}")
        except sqlite3.OperationalError as exc:
            if "unable to open" in str(exc) or "readonly" in str(exc):  # the folder, not the journal, is the problem
                raise ValueError(f"{self.path}: cannot open the journal ({exc}); is {out_dir} writable?") from None
            raise JournalDamaged(str(exc)) from None
        except sqlite3.DatabaseError as exc:
            raise JournalDamaged(str(exc)) from None

    def state(self, name: str) -> tuple[int, int, str, float] | None:
        row = self.db.execute("SELECT size, mtime_ns, status, next_try FROM files WHERE name=?", (_key(name),)).fetchone()
        return (int(row[0]), int(row[1]), str(row[2]), float(row[3] or 0)) if row else None

    def attempts(self, name: str) -> int:
        row = self.db.execute("SELECT attempts FROM files WHERE name=?", (_key(name),)).fetchone()
        return int(row[0] or 0) if row else 0

    def mark(self, name: str, size: int, mtime_ns: int, status: str, output: str | None = None,
             error: str | None = None, attempts: int = 0, next_try: float = 0.0) -> None:
        self.db.execute("INSERT OR REPLACE INTO files (name, size, mtime_ns, status, output, error, updated, attempts,"
                        " next_try) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (_key(name), size, mtime_ns, status, output, error, time.time(), attempts, next_try))

    def interrupted(self) -> list[str]:
        """Files a killed run left marked ``processing``."""
        return [_name(r[0]) for r in self.db.execute("SELECT name FROM files WHERE status='processing'")]

    def counts(self) -> dict[str, int]:
        return {s: int(n) for s, n in self.db.execute("SELECT status, COUNT(*) FROM files GROUP BY status")}

    def errors(self, status: str = "failed", limit: int = 10) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT name, error, attempts, next_try FROM files WHERE status=? ORDER BY updated DESC "
                               "LIMIT ?", (status, limit))
        return [{"file": shown(_name(a)), "error": str(b), **({"attempts": int(c or 0), "next_try": float(d or 0)}
                                                                if status == "retry" else {})} for a, b, c, d in rows]

    def close(self) -> None:
        self.db.close()


def _name(key: str | bytes) -> str:
    return os.fsdecode(key) if isinstance(key, bytes) else str(key)


def open_journal(out_dir: Path, in_dir: Path | None, log: Callable[[str], None]) -> Journal:
    """The journal of ``out_dir``; a damaged one is set aside (kept for inspection, never deleted) and a new
    one rebuilt from the outputs on disk: every input with a sidecar is done, so nothing is restored twice."""
    try:
        return Journal(out_dir)
    except JournalDamaged as exc:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for suffix in ("", "-wal", "-shm"):
            part = out_dir / f"{JOURNAL}{suffix}"
            if part.exists():
                part.replace(out_dir / f"{JOURNAL}{suffix}.damaged-{stamp}")
        log(f"journal {out_dir / JOURNAL} was damaged ({str(exc)[:80]}); set aside as {JOURNAL}.damaged-{stamp}, "
            "rebuilding it from the outputs")
    journal = Journal(out_dir)
    rebuilt = 0
    for sidecar in sorted(out_dir.glob("*.restored.json")):
        try:
            meta = json.loads(sidecar.read_text())
            name = str(meta["input"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        src = in_dir / name if in_dir is not None else None
        try:
            st = src.stat() if src is not None else None
        except OSError:
            st = None
        journal.mark(name, st.st_size if st else -1, st.st_mtime_ns if st else -1, "done", output=meta.get("output"))
        rebuilt += 1
    log(f"journal rebuilt: {rebuilt} files already restored")
    return journal


class WatchLock:
    """One watcher per output folder: an advisory lock held for the watcher's life (released by the kernel
    when the process dies, kill -9 included, so a crash never leaves a stale lock)."""

    def __init__(self, out_dir: Path) -> None:
        import fcntl

        out_dir.mkdir(parents=True, exist_ok=True)
        self.path = out_dir / LOCK
        self.fh = open(self.path, "a+")
        try:
            fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.fh.seek(0)
            pid = self.fh.read().strip() or "?"
            self.fh.close()
            raise ValueError(f"{out_dir}: another ftrt watch (PID {pid}) is writing here; stop it first, or give "
                             "this one another output folder") from None
        self.fh.seek(0)
        self.fh.truncate()
        self.fh.write(str(os.getpid()))
        self.fh.flush()

    def release(self) -> None:
        if not self.fh.closed:
            self.fh.close()


def lock_holder(out_dir: Path) -> int | None:
    """The PID of the watcher holding ``out_dir``'s lock, or None when none runs."""
    import fcntl

    p = out_dir / LOCK
    if not p.exists():
        return None
    with open(p, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            text = fh.read().strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fh, fcntl.LOCK_UN)
    return None


@dataclass
class WatchStats:
    done: int = 0
    failed: int = 0
    retried: int = 0

    def summary(self) -> str:
        return f"{self.done} restored, {self.failed} failed" + (f", {self.retried} to retry" if self.retried else "")


def _candidates(in_dir: Path) -> list[Path]:
    # Hidden and temporary names are how cameras and copy tools stage partial files. DICOM exports
    # often carry no suffix at all: those are recognised by their 'DICM' preamble.
    return sorted(p for p in in_dir.iterdir() if p.is_file() and not p.name.startswith(".")
                  and (p.suffix.lower() in IMAGE_SUFFIXES or (not p.suffix and is_dicom(p))))


def output_name(path: Path, suffix: str = ".png", tag: str = "restored") -> str:
    """One output per input *name*: ``<name>.<tag><suffix>``, the name kept whole (a.jpg, a.png and a.PNG
    do not collide; the fixed ``.<tag><suffix>`` ending keeps every role's names apart)."""
    return fit_name(path.name, f".{tag}{suffix}")


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
        try:
            self.lock = WatchLock(self.out_dir)
        except OSError as exc:
            raise ValueError(f"{self.out_dir}: cannot use it as the output folder ({exc.strerror})") from None
        try:
            self.journal = open_journal(self.out_dir, self.in_dir, log)
        except OSError as exc:
            self.lock.release()
            raise ValueError(f"{self.out_dir}: cannot keep the journal there ({exc.strerror})") from None
        except BaseException:
            self.lock.release()
            raise
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
            if prev is not None and prev[2] == "retry" and time.time() < prev[3]:
                continue  # a transient error: its back-off has not passed yet
            if self.seen.get(path.name) != key:
                self.seen[path.name] = key  # first sight or still growing: look again next poll
                continue
            self._handle(path, key, prev)
            handled += 1
        return handled

    def _handle(self, path: Path, key: tuple[int, int], prev: tuple[int, int, str, float] | None) -> None:
        """``prev``: the file's journal row as the scan read it (a retry carries its attempt count on)."""
        name = shown(path.name)
        attempts = self.journal.attempts(path.name) if prev is not None and prev[2] == "retry" else 0
        self.journal.mark(path.name, *key, status="processing", attempts=attempts)
        t0 = time.perf_counter()
        rec = self.job.run(path)
        if rec.status == "ok" and rec.output is not None:
            out = Path(rec.output)
            try:
                write_json_atomic(self.out_dir / output_name(path, ".json"),
                                  {"input": path.name, "output": out.name,
                                   "seconds": round(time.perf_counter() - t0, 3), **self.record, **rec.fields})
            except OSError as exc:
                rec.status, rec.error = "error", f"{path.name}: sidecar not written ({exc.strerror or exc})"
                rec.transient = is_transient(exc)
        if rec.status == "ok" and rec.output is not None:
            self.journal.mark(path.name, *key, status="done", output=shown(Path(rec.output).name))
            self.stats.done += 1
            self.log(f"restored {name} -> {shown(Path(rec.output).name)}")
            return
        msg = shown((rec.error or rec.reason or "not restored").replace(str(path), path.name))
        if rec.transient:
            # Not the file's fault: try again later, waiting longer each time, and say so every time.
            wait = min(self.poll * 2 ** (attempts + 1), MAX_BACKOFF)
            self.journal.mark(path.name, *key, status="retry", error=msg, attempts=attempts + 1,
                              next_try=time.time() + wait)
            self.stats.retried += 1
            self.log(f"will retry in {wait:.0f} s (attempt {attempts + 1}): {msg}")
            return
        # A verdict on the file: quarantined (never retried while it stays the same) with the reason.
        self.journal.mark(path.name, *key, status="failed", error=msg)
        self.stats.failed += 1
        self.log(f"failed: {msg}")

    def _remove_orphaned_temps(self) -> None:
        """A run killed mid-write leaves the temp file of an atomic write (``.<output>.<random>.tmp``) beside
        its outputs; the file it was writing is redone from the start, so the temp is only litter."""
        for name in self.journal.interrupted():
            for out in _outputs(Path(name)).values():
                # The temp prefix is the output name cut to 64 characters (ftrt.io.atomic).
                for tmp in self.out_dir.glob(f".{glob.escape(out[:64])}.*.tmp"):
                    tmp.unlink(missing_ok=True)
                    self.log(f"removed {shown(tmp.name)}, left by an interrupted run")

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
            self.lock.release()
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
    """What ``ftrt watch --status`` prints: counts by state, files waiting to be retried (transient errors)
    and quarantined ones (each with its reason), whether a watcher holds the folder, journals set aside."""
    out = Path(out_dir)
    if not (out / JOURNAL).exists():
        raise ValueError(f"{out_dir}: no watch journal ({JOURNAL}) here")
    try:
        j = Journal(out)
    except JournalDamaged as exc:
        raise ValueError(f"{out / JOURNAL}: damaged ({str(exc)[:80]}); the next `ftrt watch` sets it aside and "
                         "rebuilds it from the outputs") from None
    try:
        return {"counts": j.counts(), "retrying": j.errors("retry"), "quarantined": j.errors("failed"),
                "running_pid": lock_holder(out),
                "damaged_journals_set_aside": sorted(p.name for p in out.glob(f"{JOURNAL}.damaged-*"))}
    finally:
        j.close()
