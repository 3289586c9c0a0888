"""The watch service never stops serving the camera: odd names, damaged journals, full disks, a second copy."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ftrt.io import write_image
from ftrt.watch import JOURNAL, Journal, Watcher, output_name, shown, status
from tests.adversarial import hostile as h


def _identity(img: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    return img, np.ones(img.shape[:2], bool), {}


def _photo(path: Path) -> Path:
    return write_image(path, h.small_rgb(64).astype(np.float32) / 255)


def _watch(in_dir: Path, out_dir: Path, process: Any = _identity, logs: list[str] | None = None) -> Watcher:
    return Watcher(in_dir, out_dir, process, poll=0.01, log=(logs.append if logs is not None else lambda m: None))


@pytest.mark.parametrize("raw", [b"caf\xe9.png", b"\xff\xfe.png", b"two\nlines.png", b"tab\there.png",
                                 b"\x1b[31mred.png"])
def test_any_name_is_recorded_and_logged_safely(tmp_path: Path, raw: bytes) -> None:
    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    in_dir.mkdir()
    name = os.fsdecode(raw)
    _photo(in_dir / name)
    _photo(in_dir / "plain.png")
    logs: list[str] = []
    w = _watch(in_dir, out_dir, logs=logs)
    stats = w.run(once=True)
    assert stats.done == 2 and stats.failed == 0
    assert (out_dir / output_name(Path(name))).exists()
    assert all("\n" not in m and "\x1b" not in m for m in logs)
    assert any(shown(name) in m for m in logs)
    # A restart finds both journalled: nothing is redone.
    again = _watch(in_dir, out_dir).run(once=True)
    assert again.done == 0 and status(out_dir)["counts"] == {"done": 2}


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty_file_header"])
def test_damaged_journal_is_set_aside_and_rebuilt(tmp_path: Path, damage: str) -> None:
    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    in_dir.mkdir()
    for i in range(3):
        _photo(in_dir / f"{i}.png")
    _watch(in_dir, out_dir).run(once=True)
    j = out_dir / JOURNAL
    for extra in ("-wal", "-shm"):
        (out_dir / f"{JOURNAL}{extra}").unlink(missing_ok=True)
    data = j.read_bytes()
    j.write_bytes({"truncated": data[: len(data) // 3], "garbage": os.urandom(4096),
                   "empty_file_header": b"SQLite format 3\x00" + bytes(84)}[damage])
    with pytest.raises(ValueError, match="damaged"):
        status(out_dir)
    _photo(in_dir / "new.png")
    logs: list[str] = []
    stats = _watch(in_dir, out_dir, logs=logs).run(once=True)
    assert stats.done == 1  # only the new capture: the three restored before are known from their sidecars
    assert any("set aside" in m for m in logs)
    rep = status(out_dir)
    assert rep["counts"] == {"done": 4} and len(rep["damaged_journals_set_aside"]) >= 1


def test_full_disk_is_retried_with_back_off_not_a_verdict(tmp_path: Path) -> None:
    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    in_dir.mkdir()
    _photo(in_dir / "a.png")
    calls = {"n": 0}

    def flaky(img: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        calls["n"] += 1
        if calls["n"] <= 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return _identity(img)

    logs: list[str] = []
    w = _watch(in_dir, out_dir, flaky, logs)
    w.scan_once()  # first sight
    w.scan_once()  # attempt 1: ENOSPC
    rep = status(out_dir)
    assert rep["counts"] == {"retry": 1} and rep["retrying"][0]["attempts"] == 1
    assert "No space left" in rep["retrying"][0]["error"] and rep["quarantined"] == []
    w.scan_once()  # inside the back-off: not tried
    assert calls["n"] == 1
    w.journal.db.execute("UPDATE files SET next_try=0")  # time passes
    w.scan_once()  # attempt 2: ENOSPC again, a longer wait
    w.journal.db.execute("UPDATE files SET next_try=0")
    w.scan_once()  # space is back
    w.journal.close()
    w.lock.release()
    assert calls["n"] == 3 and status(out_dir)["counts"] == {"done": 1}
    waits = [m for m in logs if m.startswith("will retry")]
    assert len(waits) == 2 and "attempt 2" in waits[1]


def test_a_bad_file_is_quarantined_with_its_reason_and_not_retried(tmp_path: Path) -> None:
    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    in_dir.mkdir()
    (in_dir / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(30))
    _watch(in_dir, out_dir).run(once=True)
    rep = status(out_dir)
    assert rep["counts"] == {"failed": 1} and "IHDR" in rep["quarantined"][0]["error"]
    assert _watch(in_dir, out_dir).run(once=True).failed == 0  # not retried while unchanged


def test_dicom_without_uids_is_quarantined_not_a_crash(tmp_path: Path) -> None:
    pydicom = pytest.importorskip("pydicom")
    from ftrt.jobs import RestoreJob
    from ftrt.watch import watch_names
    from tests.io.dicom_samples import make_photo_dicom

    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    in_dir.mkdir()
    p = make_photo_dicom(in_dir / "IM1.dcm", h.small_rgb(64).astype(np.float32) / 255)
    ds = pydicom.dcmread(p)
    del ds.SOPInstanceUID
    ds.save_as(p, enforce_file_format=False)
    _photo(in_dir / "next.png")
    job = RestoreJob(None, out_dir, watch_names, dicom_out="dicom", model_id="m", process=_identity)
    stats = Watcher(in_dir, out_dir, job, poll=0.01, log=lambda m: None).run(once=True)
    assert stats.done == 1 and stats.failed == 1  # the next capture is still served
    assert "SOPInstanceUID" in status(out_dir)["quarantined"][0]["error"]


def test_second_watcher_on_the_same_output_is_refused(tmp_path: Path) -> None:
    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    in_dir.mkdir()
    first = _watch(in_dir, out_dir)
    try:
        with pytest.raises(ValueError, match=f"another ftrt watch \\(PID {os.getpid()}\\)"):
            _watch(in_dir, out_dir)
        assert status(out_dir)["running_pid"] == os.getpid()
    finally:
        first.journal.close()
        first.lock.release()
    assert status(out_dir)["running_pid"] is None
    _watch(in_dir, out_dir).run(once=True)  # free again once the first is gone


def test_second_watcher_process_exits_with_one_line(tmp_path: Path, random_onnx: Path) -> None:
    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    in_dir.mkdir()
    first = _watch(in_dir, out_dir)
    try:
        r = subprocess.run([sys.executable, "-m", "ftrt.cli", "watch", str(in_dir), "-o", str(out_dir), "--model",
                            str(random_onnx), "--once"], capture_output=True, text=True, timeout=120)
    finally:
        first.journal.close()
        first.lock.release()
    assert r.returncode == 2 and "another ftrt watch" in r.stderr and "Traceback" not in r.stderr


def test_old_journal_gains_the_retry_columns(tmp_path: Path) -> None:
    import sqlite3

    out_dir = tmp_path / "out"
    out_dir.mkdir()
    db = sqlite3.connect(out_dir / JOURNAL)
    db.execute("CREATE TABLE files (name TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, status TEXT, "
               "output TEXT, error TEXT, updated REAL)")
    db.execute("INSERT INTO files VALUES ('a.png', 1, 2, 'done', 'a.png.restored.png', NULL, 0)")
    db.commit()
    db.close()
    j = Journal(out_dir)
    assert j.state("a.png") == (1, 2, "done", 0.0)
    j.close()
    assert json.loads(json.dumps(status(out_dir)))["counts"] == {"done": 1}


def test_unusable_output_folder_is_one_line(tmp_path: Path) -> None:
    in_dir = tmp_path / "in"
    in_dir.mkdir()
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ValueError, match="cannot use it as the output folder"):
        _watch(in_dir, blocker / "out")
    with pytest.raises(ValueError):
        _watch(in_dir, Path("/proc/ftrt-watch-out"))
