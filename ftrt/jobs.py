"""One per-file restoration job, shared by ``ftrt restore`` (a batch) and ``ftrt watch`` (a service).

read (image or DICOM) -> gate before -> restore -> gate after -> write the outputs atomically -> one typed
record. The batch and the watcher differ only in how they iterate, how they name outputs (``OutputNames``)
and what they do with the record (print it, or journal it), so a fix to reading, writing or error handling
lands in both.
"""

from __future__ import annotations

import errno
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from ftrt import __version__
from ftrt.io import ImageReadError, read_image, write_image
from ftrt.io.dicom import is_dicom, read_dicom, write_derived

# The errors a bad *file* raises (never a bug in ftrt): recorded against that file, the batch goes on.
FILE_ERRORS = (ImageReadError, ValueError, OSError, MemoryError)


class SkipFile(Exception):
    """Raised to leave a file untouched on purpose; recorded as skipped."""

    def __init__(self, reason: str, extra: dict[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.extra = extra or {}


@dataclass
class FileRecord:
    """What happened to one input. ``fields`` holds the per-stage ms, the pipeline's info and readability."""

    input: str
    status: str = "ok"  # ok | error | skipped
    output: str | None = None
    error: str | None = None
    reason: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    # An error of the machine, not of the file (a full disk, an I/O error, a permission): worth retrying.
    transient: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The flat JSON record ``--json`` prints (one per line)."""
        d = asdict(self)
        extra = d.pop("fields")
        if d["reason"] is None:
            d.pop("reason")
        if not d["transient"]:
            d.pop("transient")
        return {**d, **extra}


class OutputNames(Protocol):
    def __call__(self, path: Path, role: str, suffix: str) -> str:
        """The output file name for ``path``: role 'image' (the restored photograph) or 'compare'."""
        ...


def one_line(path: Path | str, exc: BaseException) -> str:
    """The error as one line that names the file."""
    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return msg if str(path) in msg else f"{path}: {msg}"


def _unrestored(img: np.ndarray, ms: dict[str, float]) -> Any:
    """The pipeline's result for a photograph left as it was (FOV kept, nothing else changed)."""
    from ftrt.fov import fov_mask
    from ftrt.runtime.pipeline import RestoreResult

    mask = fov_mask(img)
    return RestoreResult(np.asarray(img, np.float32) * mask[..., None], mask, dict(ms), {})


def restore_image(img: np.ndarray, pipeline: Any, gate: Any = None,
                  skip_invalid: bool = False) -> tuple[Any, dict[str, Any]]:
    """Restore one image; with ``gate`` score it before and after (``SkipFile`` if not a fundus photograph
    and ``skip_invalid``). Returns (the pipeline's RestoreResult, record fields)."""
    ms: dict[str, float] = {}
    before = None
    if gate is not None:
        t0 = time.perf_counter()
        before = gate.score(img)
        ms["gate_before"] = (time.perf_counter() - t0) * 1e3
        if skip_invalid and not before.valid:
            raise SkipFile(f"not a fundus photograph (valid p={before.probs['valid']:.2f}); left untouched",
                           {"readability_before": before.as_dict()})
    expensive = bool(getattr(pipeline.backend, "expensive", False))
    if expensive and before is not None and before.readable:
        # RetinaRegen's screening: a photograph the gate already reads is passed through untouched instead of
        # spending tens of network calls on it; the record says so.
        return _unrestored(img, ms), {"ms": ms, "readability_before": before.as_dict(),
                                              "readability_after": before.as_dict(), "became_readable": False,
                                              "diffusion": {"ran": False, "reason": "readable before restoration"}}
    res = pipeline.restore(img)
    ms.update(res.ms)
    extra: dict[str, Any] = {"ms": ms, **res.info}
    if expensive:
        extra["diffusion"] = {"ran": True, **pipeline.backend.describe()}
    if gate is not None and before is not None:
        t0 = time.perf_counter()
        after = gate.score(res.image)
        ms["gate_after"] = (time.perf_counter() - t0) * 1e3
        extra.update(readability_before=before.as_dict(), readability_after=after.as_dict(),
                     became_readable=bool(after.readable and not before.readable))
    return res, extra


@dataclass
class RestoreJob:
    """Restore one file into ``out_dir``.

    ``dicom_out``: a DICOM input is written back as a derived DICOM instance ("dicom") or as an image
    ("png"); ``model_id`` names the model in the derived instance. ``bits``: the depth of image outputs, 8 or
    16; 0 keeps each source's (a derived DICOM always takes its SOP class's).
    """

    pipeline: Any  # ftrt.runtime.FundusPipeline
    out_dir: Path
    names: OutputNames
    gate: Any = None  # ftrt.runtime.readability.ReadabilityScorer
    skip_invalid: bool = False
    side_by_side: bool = False
    dicom_out: str = "png"
    model_id: str = ""
    suffix: str = ".png"
    process: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, dict[str, Any]]] | None = None
    bits: int = 0

    def __post_init__(self) -> None:
        if self.dicom_out not in ("dicom", "png"):
            raise ValueError(f"dicom_out must be 'dicom' or 'png', not {self.dicom_out!r}")
        if self.bits not in (0, 8, 16):
            raise ValueError(f"bits must be 0 (the source's), 8 or 16, not {self.bits!r}")

    def _process(self, img: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        if self.process is not None:  # a caller's own processing (tests, services that wrap the pipeline)
            return self.process(img)
        res, extra = restore_image(img, self.pipeline, self.gate, self.skip_invalid)
        return res.image, res.mask, extra

    def run(self, path: Path) -> FileRecord:
        rec = FileRecord(str(path))
        try:
            t0 = time.perf_counter()
            source = read_dicom(path) if is_dicom(path) else None
            img, depth = (source.image, source.depth) if source is not None else read_image(path)
            depth = self.bits or depth
            t1 = time.perf_counter()
            result, mask, extra = self._process(img)
            if not np.isfinite(result).all():
                # NaN becomes black on the way out: a model that produced it must not be reported as written.
                raise ValueError("the model produced NaN or infinite values; nothing written")
            t2 = time.perf_counter()
            if source is not None and self.dicom_out == "dicom":
                out = self.out_dir / self.names(path, "image", ".dcm")
                write_derived(out, result, source, self.model_id,
                              f"ftrt {__version__} restoration, model {self.model_id}")
            else:
                out = write_image(self.out_dir / self.names(path, "image", self.suffix), result, depth)
            if self.side_by_side:
                compare = self.out_dir / self.names(path, "compare", self.suffix)
                write_image(compare, np.concatenate([img * mask[..., None], result], axis=1), depth)
                extra["side_by_side"] = compare.name
            ms = {"read": (t1 - t0) * 1e3, **extra.pop("ms", {}), "write": (time.perf_counter() - t2) * 1e3}
            rec.output = str(out)
            rec.fields = {"shape": list(img.shape[:2]), "dicom": source is not None, **extra,
                          "ms": {k: round(v, 2) for k, v in ms.items()}}
        except SkipFile as skip:
            rec.status, rec.reason, rec.fields = "skipped", str(skip), dict(skip.extra)
        except FILE_ERRORS as exc:
            rec.status, rec.error = "error", one_line(path, exc)
            rec.transient = is_transient(exc)
        return rec


# errno values of a machine's trouble rather than a file's (see ftrt.watch, which retries them).
TRANSIENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EACCES, errno.EPERM, errno.EROFS, errno.EAGAIN,
                    errno.EBUSY, errno.ENFILE, errno.EMFILE, errno.ENOMEM}


def is_transient(exc: BaseException) -> bool:
    """Whether an error says nothing about the file itself: retried later instead of a verdict on it."""
    if isinstance(exc, MemoryError):
        return True
    seen = 0
    while exc is not None and seen < 8:  # the chain of causes, bounded (chains can loop)
        if isinstance(exc, OSError) and exc.errno in TRANSIENT_ERRNOS:
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
        seen += 1
    return False
