"""`ftrt watch` with real processes: files dropped while it runs, a SIGKILL midway, a restart."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.io.dicom_samples import PATIENT_ID, PATIENT_NAME, make_photo_dicom
from ftrt.io import write_image
from ftrt.io.dicom import read_dicom
from ftrt.watch import JOURNAL, output_name, status


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _start(in_dir: Path, out_dir: Path, model: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ftrt.cli", "watch", str(in_dir), "-o", str(out_dir),
                             "--model", str(model), "--max-side", "64", "--threads", "1", "--poll", "0.3", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_kill_and_restart_loses_and_repeats_nothing(tmp_path: Path, retina: np.ndarray, random_onnx: Path) -> None:
    in_dir, out_dir = tmp_path / "camera", tmp_path / "restored"
    in_dir.mkdir()
    good = []
    for i in range(24):
        img = cv2.resize(retina, (96 + 4 * i, 96 + 4 * i), interpolation=cv2.INTER_AREA)
        good.append(write_image(in_dir / f"img_{i:02d}.png", np.clip(img * (0.8 + 0.02 * i), 0, 1)).name)
    # A camera's DICOM export: JPEG-compressed ophthalmic photography, no file suffix, patient data inside.
    good.append(make_photo_dicom(in_dir / "IM0001", retina[:128, :128], compressed=True).name)
    (in_dir / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    png = (in_dir / "img_00.png").read_bytes()
    (in_dir / "truncated.png").write_bytes(png[: len(png) // 3])
    dcm = (in_dir / "IM0001").read_bytes()
    (in_dir / "broken.dcm").write_bytes(dcm[: len(dcm) // 2])
    (in_dir / "notes.txt").write_text("not an image: never touched, never reported as an image")
    bad = ["broken.dcm", "corrupt.jpg", "truncated.png"]

    proc = _start(in_dir, out_dir, random_onnx, "--side-by-side")
    # A capture written slowly in chunks while the service runs: it must only be taken once complete.
    slow = cv2.imencode(".png", (np.clip(retina, 0, 1) * 255).astype(np.uint8)[..., ::-1])[1].tobytes()
    with open(in_dir / "slow.png", "wb") as fh:
        for k in range(4):
            fh.write(slow[k * len(slow) // 4:(k + 1) * len(slow) // 4])
            fh.flush()
            time.sleep(0.1)  # pauses shorter than the poll interval: a stalled copy looks complete
    good.append("slow.png")
    assert len(list(in_dir.iterdir())) == 30
    before = _digest(in_dir)
    deadline = time.time() + 30
    while time.time() < deadline and len(list(out_dir.glob("*.restored.*"))) < 3:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    _, err1 = proc.communicate(timeout=10)
    done_at_kill = len(list(out_dir.glob("*.restored.*")))
    assert 3 <= done_at_kill < len(good), "kill the service midway, not before or after the work"

    proc = _start(in_dir, out_dir, random_onnx, "--once", "--side-by-side")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err

    expected = sorted(output_name(Path(n), ".dcm" if n == "IM0001" else ".png") for n in good)
    outputs = sorted(p.name for p in out_dir.glob("*.restored.*") if not p.name.endswith(".json"))
    assert outputs == expected  # each good file exactly one output
    assert len(list(out_dir.glob("*.compare.png"))) == len(good)
    derived = read_dicom(out_dir / output_name(Path("IM0001"), ".dcm"))
    assert list(derived.dataset.ImageType[:2]) == ["DERIVED", "SECONDARY"]
    assert derived.dataset.PatientID == PATIENT_ID  # filed with the patient ...
    logs = err1 + out + err + "".join(p.read_text() for p in out_dir.glob("*.json"))
    logs += json.dumps(status(out_dir))
    assert PATIENT_ID not in logs and PATIENT_NAME.split("^")[0] not in logs  # ... but never logged
    assert not [p for p in out_dir.iterdir() if p.name.endswith(".tmp")]  # no half-written files
    slow_out = cv2.imread(str(out_dir / output_name(Path("slow.png"))))
    assert slow_out is not None and slow_out.shape[:2] == retina.shape[:2]
    rep = status(out_dir)
    assert rep["counts"] == {"done": len(good), "failed": len(bad)}
    assert sorted(e["file"] for e in rep["quarantined"]) == bad and rep["retrying"] == []
    assert _digest(in_dir) == before  # no original changed, moved or deleted
    sidecar = json.loads((out_dir / output_name(Path("img_03.png"), ".json")).read_text())
    assert sidecar["input"] == "img_03.png" and sidecar["backend"] == "ort" and "ms" in sidecar
    assert (out_dir / JOURNAL).exists()


def test_sigterm_stops_cleanly_and_status_reports(tmp_path: Path, retina: np.ndarray, random_onnx: Path) -> None:
    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    in_dir.mkdir()
    write_image(in_dir / "a.png", retina)
    proc = _start(in_dir, out_dir, random_onnx)
    deadline = time.time() + 30
    while time.time() < deadline and not list(out_dir.glob("*.restored.png")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0 and "1 restored, 0 failed" in out
    res = subprocess.run([sys.executable, "-m", "ftrt.cli", "watch", "--status", str(out_dir)], capture_output=True,
                         text=True, timeout=60)
    assert json.loads(res.stdout)["counts"] == {"done": 1}
    same = subprocess.run([sys.executable, "-m", "ftrt.cli", "watch", str(in_dir), "-o", str(in_dir)],
                          capture_output=True, text=True, timeout=60)
    assert same.returncode == 2 and "must not be the watched folder" in same.stderr


def test_restart_removes_the_temp_file_a_kill_left_mid_write(tmp_path: Path, retina: np.ndarray) -> None:
    """A SIGKILL during an atomic write leaves ``.<output>.<random>.tmp``; the restart redoes the file and
    removes that temp, and only temps of files the journal had in flight."""
    from ftrt.watch import Journal, Watcher

    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    in_dir.mkdir()
    src = write_image(in_dir / "a.png", retina)
    journal = Journal(out_dir)
    st = src.stat()
    journal.mark("a.png", st.st_size, st.st_mtime_ns, "processing")  # what the killed run left
    journal.close()
    stale = out_dir / f".{output_name(src)}.k3j2h1.tmp"
    stale.write_bytes(b"half a png")
    foreign = out_dir / f".{output_name(Path('b.png'))}.x1.tmp"  # no journal row in flight: not ours to delete
    foreign.write_bytes(b"?")
    logs: list[str] = []
    watcher = Watcher(in_dir, out_dir, lambda img: (img, np.ones(img.shape[:2], bool), {}), poll=0.01,
                      log=logs.append)
    watcher.run(once=True)
    assert not stale.exists() and foreign.exists()
    assert (out_dir / output_name(src)).exists() and status(out_dir)["counts"] == {"done": 1}
    assert any("interrupted run" in m for m in logs)


def test_watch_bits_16_writes_16_bit_images_and_keeps_dicom_depth(tmp_path: Path, retina: np.ndarray,
                                                                  random_onnx: Path) -> None:
    """`ftrt watch --bits 16` (with watch's default of derived DICOM): an 8-bit PNG capture comes out as a 16-bit
    PNG holding values between 8-bit levels, while an 8-bit ophthalmic DICOM capture still comes out as its SOP
    class's 8 bits, in the same run."""
    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    in_dir.mkdir()
    write_image(in_dir / "a.png", retina)
    make_photo_dicom(in_dir / "IM0001", retina)
    res = subprocess.run([sys.executable, "-m", "ftrt.cli", "watch", str(in_dir), "-o", str(out_dir), "--model",
                          str(random_onnx), "--max-side", "64", "--threads", "1", "--poll", "0.05", "--once",
                          "--bits", "16"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "2 restored, 0 failed" in res.stdout, res.stderr
    png = cv2.imread(str(out_dir / output_name(Path("a.png"))), cv2.IMREAD_UNCHANGED)
    assert png.dtype == np.uint16 and png.shape[:2] == retina.shape[:2]
    assert ((png.astype(np.int64) % 257) != 0).mean() > 0.2  # not an 8-bit image stretched to 16 bits
    derived = read_dicom(out_dir / output_name(Path("IM0001"), ".dcm"))
    assert derived.depth == 8
