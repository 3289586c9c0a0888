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

from ftrt.io import ImageReadError, InputError, collect_inputs, ensure_output_dir, read_image, write_image, write_json_atomic
from ftrt.io.files import skipped_in_folders

Record = dict[str, Any]


class SkipFile(Exception):
    """Raised by a ``process`` function to leave a file untouched on purpose; recorded as skipped."""

    def __init__(self, reason: str, extra: dict[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.extra = extra or {}


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
    # Camera folders hold sidecar files too: list them as skipped rather than fail or hide them.
    records: list[Record] = [
        {"input": str(p), "output": None, "status": "skipped", "error": None,
         "reason": f"not an image file ({p.suffix or 'no suffix'})"}
        for p in skipped_in_folders(inputs)
    ]
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
        except (ImageReadError, ValueError, OSError, MemoryError) as exc:
            rec.update(status="error", error=_one_line(path, exc))
        records.append(rec)
    return records


def _one_line(path: Path, exc: BaseException) -> str:
    return str(exc) if str(path) in str(exc) else f"{path}: {exc}"


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


def restore_one(img: np.ndarray, pipeline: Any, gate: Any = None,
                skip_invalid: bool = False) -> tuple[Any, dict[str, Any]]:
    """Restore one image; with ``gate`` score it before and after (``SkipFile`` if not a fundus photograph
    and ``skip_invalid``). Returns (the pipeline's RestoreResult, record fields: per-stage ms, pipeline info,
    readability)."""
    ms: dict[str, float] = {}
    before = None
    if gate is not None:
        t0 = time.perf_counter()
        before = gate.score(img)
        ms["gate_before"] = (time.perf_counter() - t0) * 1e3
        if skip_invalid and not before.valid:
            raise SkipFile(f"not a fundus photograph (valid p={before.probs['valid']:.2f}); left untouched",
                           {"readability_before": before.as_dict()})
    res = pipeline.restore(img)
    ms.update(res.ms)
    extra: dict[str, Any] = {"ms": ms, **res.info}
    if gate is not None and before is not None:
        t0 = time.perf_counter()
        after = gate.score(res.image)
        ms["gate_after"] = (time.perf_counter() - t0) * 1e3
        extra.update(readability_before=before.as_dict(), readability_after=after.as_dict(),
                     became_readable=bool(after.readable and not before.readable))
    return res, extra


def restore_files(inputs: list[str], out_dir: str | Path, pipeline: Any, side_by_side: bool = False,
                  progress: bool = True, gate: Any = None, skip_invalid: bool = False) -> list[Record]:
    """Restore each file through a :class:`ftrt.runtime.FundusPipeline` (see :func:`restore_one`)."""

    def process(path: Path, img: np.ndarray, depth: int, index: int) -> tuple[np.ndarray, dict[str, Any]]:
        res, extra = restore_one(img, pipeline, gate, skip_invalid)
        if side_by_side:
            extra["extra_images"] = {"_compare": np.concatenate([img * res.mask[..., None], res.image], axis=1)}
        return res.image, extra

    return run_batch(inputs, out_dir, process, desc="restore", progress=progress)


def assess_files(inputs: list[str], scorer: Any, progress: bool = True) -> list[Record]:
    """Score each file's readability; nothing is written. A record per file, errors included."""
    records: list[Record] = []
    for path in tqdm(collect_inputs(inputs), desc="assess", disable=not progress, unit="img"):
        try:
            img, _ = read_image(path)
            records.append({"file": str(path), **scorer.score(img).as_dict(), "status": "ok", "error": None})
        except (ImageReadError, ValueError, OSError, MemoryError) as exc:
            records.append({"file": str(path), "status": "error", "error": _one_line(path, exc)})
    return records
