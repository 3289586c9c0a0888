"""Batch runners shared by the CLI: each file is processed independently, failures are recorded.

A record is ``{"input", "output", "status": "ok"|"error", "error", ...}``. Inputs
are never written to; outputs go to a separate folder, atomically.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
from tqdm import tqdm

from ftrt.io import InputError, collect_inputs, ensure_output_dir, read_image, write_image, write_json_atomic
from ftrt.io.files import fit_name, skipped_in_folders
from ftrt.jobs import FILE_ERRORS, RestoreJob, SkipFile, one_line

Record = dict[str, Any]


def run_batch(
    inputs: Iterable[str],
    out_dir: str | Path,
    process: Callable[[Path, np.ndarray, int, int], tuple[np.ndarray, dict[str, Any]]],
    suffix: str = ".png",
    progress: bool = True,
    desc: str = "",
) -> list[Record]:
    """Read each input, call ``process(path, image, depth, index)``, write ``OUT/<stem><suffix>``.

    ``process`` returns (image, extra); ``extra["ms"]`` stage timings are merged
    with read/write times, and ``extra["extra_images"]`` ({name_suffix: image})
    are written beside the main output.
    """
    inputs = list(inputs)
    files = collect_inputs(inputs)
    out = ensure_output_dir(out_dir, files)
    records = _skipped_records(inputs)
    stems: dict[str, int] = {}
    for i, path in enumerate(tqdm(files, desc=desc, disable=not progress or len(files) < 2, unit="img")):
        rec: Record = {"input": str(path), "output": None, "status": "ok", "error": None}
        stem = path.stem
        # Two inputs named a.png and a.jpg must not overwrite each other's output.
        if stem in stems:
            stems[stem] += 1
            stem = f"{stem}_{stems[stem]}"
        else:
            stems[stem] = 0
        try:
            t0 = time.perf_counter()
            img, depth = read_image(path)
            t1 = time.perf_counter()
            result, extra = process(path, img, depth, i)
            t2 = time.perf_counter()
            extra_images = extra.pop("extra_images", {})
            dst = write_image(out / f"{stem}{suffix}", result, depth)
            for name, aux in extra_images.items():
                write_image(out / f"{stem}{name}{suffix}", aux, depth)
            ms = {"read": (t1 - t0) * 1e3, **extra.pop("ms", {}), "write": (time.perf_counter() - t2) * 1e3}
            rec.update(output=str(dst), shape=list(img.shape[:2]), **extra,
                       ms={k: round(v, 2) for k, v in ms.items()})
        except SkipFile as skip:
            rec.update(status="skipped", reason=str(skip), **skip.extra)
        except FILE_ERRORS as exc:
            rec.update(status="error", error=one_line(path, exc))
        records.append(rec)
    return records


def _skipped_records(inputs: list[str]) -> list[Record]:
    # Camera folders hold sidecar files too: list them as skipped rather than fail or hide them.
    return [{"input": str(p), "output": None, "status": "skipped", "error": None,
             "reason": f"not an image file ({p.suffix or 'no suffix'})"} for p in skipped_in_folders(inputs)]


def degrade_files(inputs: list[str], out_dir: str | Path, kind: str = "mixed", seed: int = 0,
                  progress: bool = True, syn_model: str = "syn") -> list[Record]:
    """Degrade each file; per-file RNG is (seed, stem) so a file's result does not depend on the others."""
    from ftrt.degrade import degrade

    syn = None
    if kind == "syn":
        from ftrt.degrade.syn import SynDegrader

        try:
            syn = SynDegrader(syn_model)
        except (FileNotFoundError, ValueError) as exc:
            raise InputError(f"--syn-model: {exc}") from None
    params: dict[str, Any] = {"seed": seed, "kind": kind, "images": {}}

    def process(path: Path, img: np.ndarray, depth: int, index: int) -> tuple[np.ndarray, dict[str, Any]]:
        rng = np.random.default_rng([seed, *path.stem.encode()])
        out, p = degrade(img, kind, rng, syn=syn)
        params["images"][path.name] = p
        return out, {}

    records = run_batch(inputs, out_dir, process, desc=f"degrade {kind}", progress=progress)
    write_json_atomic(Path(out_dir) / "params.json", params)
    return records


def enhance_files(inputs: list[str], out_dir: str | Path, method: str, progress: bool = True) -> list[Record]:
    from ftrt.enhance import enhance

    def process(path: Path, img: np.ndarray, depth: int, index: int) -> tuple[np.ndarray, dict[str, Any]]:
        return enhance(img, method), {}

    return run_batch(inputs, out_dir, process, desc=method, progress=progress)


class BatchNames:
    """Output names for one batch: ``OUT/<stem><suffix>`` and ``<stem>_compare<suffix>``, unique and stable.

    Unique: no two inputs, and no input's image and another's compare picture, share a name, also on a
    case-insensitive file system (a.jpg + a.png -> a_jpg, a_png; a.png + a_1.png + a.PNG all distinct;
    x.png's compare never overwrites x_compare.png's result). Stable: the name depends on the input and on
    which other inputs collide with it, never on their order, so a rerun of the same batch writes the same
    names. A name that still clashes after the suffix is added gets a short hash of the input's path."""

    def __init__(self, files: list[Path]) -> None:
        self.stems: dict[Path, str] = {}
        groups: dict[str, list[Path]] = {}
        for p in files:
            groups.setdefault(p.stem.casefold(), []).append(p)
        for members in groups.values():
            for p in members:
                self.stems[p] = p.stem if len(members) == 1 else f"{p.stem}_{p.suffix.lstrip('.') or 'file'}"
        # Any name (or compare name) still shared: those inputs fall back to a path hash.
        while True:
            owners: dict[str, set[Path]] = {}
            for p, stem in self.stems.items():
                for name in (stem, f"{stem}_compare"):
                    owners.setdefault(name.casefold(), set()).add(p)
            clashing = {p for ps in owners.values() if len(ps) > 1 for p in ps}
            clashing = {p for p in clashing if not self.stems[p].endswith(_path_tag(p))}
            if not clashing:
                break
            for p in clashing:
                self.stems[p] = f"{p.stem}_{_path_tag(p)}"

    def stem(self, path: Path) -> str:
        if path not in self.stems:  # a file the batch did not list (a caller's own): its own stem, tagged
            self.stems[path] = f"{path.stem}_{_path_tag(path)}"
        return self.stems[path]

    def __call__(self, path: Path, role: str, suffix: str) -> str:
        return fit_name(self.stem(path), f"{'_compare' if role == 'compare' else ''}{suffix}")


def _path_tag(path: Path) -> str:
    import hashlib

    return hashlib.sha1(str(path.resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:8]


def restore_files(inputs: list[str], out_dir: str | Path, opened: Any, side_by_side: bool = False,
                  progress: bool = True, skip_invalid: bool = False, dicom_out: str = "png",
                  process: Any = None, model_id: str | None = None, bits: int = 0) -> list[Record]:
    """Restore each file with an :class:`ftrt.runtime.OpenPipeline` (the per-file work is
    :class:`ftrt.jobs.RestoreJob`, the same as ``ftrt watch``'s), or with ``process`` instead of a local
    pipeline (``opened`` None: a server does the work, ftrt.serving.client.RemoteRestorer). ``bits``: image
    outputs at 8 or 16 bits, 0: each source's depth."""
    inputs = list(inputs)
    files = collect_inputs(inputs)
    out = ensure_output_dir(out_dir, files)
    job = RestoreJob(opened.pipeline if opened else None, out, BatchNames(files),
                     gate=opened.gate if opened else None, skip_invalid=skip_invalid, side_by_side=side_by_side,
                     dicom_out=dicom_out, model_id=model_id or str(opened.model_info()["model"]), process=process,
                     bits=bits)
    records = _skipped_records(inputs)
    for path in tqdm(files, desc="restore", disable=not progress or len(files) < 2, unit="img"):
        records.append(job.run(path).as_dict())
    return records


def gate_summary(records: list[Record]) -> list[str]:
    """What restoration did to readability, improvements and harm alike."""
    gated = [r for r in records if "readability_after" in r]
    before = [r for r in gated if not r["readability_before"]["readable"]]
    became = [r for r in gated if r.get("became_readable")]
    still = [r for r in before if not r["readability_after"]["readable"]]
    lost = [r for r in gated if r["readability_before"]["readable"] and not r["readability_after"]["readable"]]
    lines = [f"readability: {len(before)} of {len(gated)} unreadable before restoration; "
             f"{len(became)} became readable, {len(still)} still unreadable, {len(lost)} readable before but not after"]
    lines += [f"  now readable: {r['input']}" for r in became]
    lines += [f"  still unreadable: {r['input']}" for r in still]
    lines += [f"  readable before, not after: {r['input']}" for r in lost]
    return lines


def assess_files(inputs: list[str], scorer: Any, progress: bool = True) -> list[Record]:
    """Score each file's readability; nothing is written. A record per file, errors included."""
    records: list[Record] = []
    for path in tqdm(collect_inputs(inputs), desc="assess", disable=not progress, unit="img"):
        try:
            img, _ = read_image(path)
            records.append({"file": str(path), **scorer.score(img).as_dict(), "status": "ok", "error": None})
        except FILE_ERRORS as exc:
            records.append({"file": str(path), "status": "error", "error": one_line(path, exc)})
    return records
