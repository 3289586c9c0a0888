"""Triton Python-backend model ``fundus_restore``: ftrt's whole pipeline on raw photographs.

Copied into ``REPO/fundus_restore/1/model.py`` by ``ftrt triton export``; Triton imports it in its Python
stub, where ``triton_python_backend_utils`` exists. Input ``IMAGE``: UINT8 H x W x 3 RGB, any size; outputs
``RESTORED`` (UINT8, the input's size) and ``RECORD`` (one JSON string: what ``ftrt restore --json`` records
for a file). A bad request (wrong dtype or rank, empty, larger than the limit) gets a v2 error with the
reason; the model keeps serving the others.
"""

from __future__ import annotations

import json
import os
import site
import sys
from pathlib import Path
from typing import Any

# Triton's Python stub embeds the interpreter without a virtual environment: `ftrt serve` names the site
# folders of the environment ftrt is installed in (FTRT_SITE), processed as site folders so that editable
# installs and .pth files work as they do in that environment, and put first: the interpreter's own
# site-packages may hold another numpy than the one the stub's tensor exchange was built for (measured:
# numpy 2 there made every output tensor arrive empty).
_before = list(sys.path)
for _d in filter(None, os.environ.get("FTRT_SITE", "").split(os.pathsep)):
    site.addsitedir(_d)
sys.path[:] = [p for p in sys.path if p not in _before] + _before

import numpy as np  # noqa: E402

try:  # present inside Triton's Python stub only
    import triton_python_backend_utils as pb_utils  # type: ignore[import-not-found]
except ImportError:  # imported for tests or inspection outside Triton
    pb_utils = None


def check_image(arr: np.ndarray, max_side: int) -> str | None:
    """Why ``arr`` is not a photograph this model takes (None: it is)."""
    if arr.dtype != np.uint8:
        return f"IMAGE must be UINT8, got {arr.dtype}"
    if arr.ndim != 3 or arr.shape[2] != 3:
        return f"IMAGE must be H x W x 3 RGB, got shape {list(arr.shape)}"
    if min(arr.shape[:2]) < 32:
        return f"IMAGE is {arr.shape[1]}x{arr.shape[0]} px; at least 32 px on each side"
    if max(arr.shape[:2]) > max_side:
        return f"IMAGE is {arr.shape[1]}x{arr.shape[0]} px; at most {max_side} px on each side"
    return None


class TritonPythonModel:
    """``ftrt.json`` says what this copy serves: ``fundus_restore`` with its network in-process (ONNX Runtime)
    or through BLS calls to the raw models beside it (``network.mode``), or one raw ONNX network by tensor name
    (``serve: onnx``, for a Triton without the onnxruntime backend)."""

    def initialize(self, args: dict[str, Any]) -> None:
        here = Path(args["model_repository"]) / str(args["model_version"])
        cfg = json.loads((here / "ftrt.json").read_text())
        threads = int(os.environ.get("FTRT_THREADS", "0")) or None
        self.raw: Any = None
        if cfg.get("serve") == "onnx":
            from ftrt.runtime.backends import make_backend

            # As `ftrt restore --backend ort` opens it (CPU layout passes), so results match local ones.
            self.raw = make_backend("ort", str(here / "model.onnx"), threads=threads).open()
            return
        network = cfg.get("network") or {"mode": "inprocess"}
        if network["mode"] == "bls":
            from ftrt.runtime.api import OpenPipeline
            from ftrt.runtime.pipeline import FundusPipeline, PipelineConfig
            from ftrt.runtime.readability import ReadabilityScorer
            from ftrt.serving.bls import BlsBackend

            gate = ReadabilityScorer(BlsBackend(pb_utils, **network["gate"])) if network.get("gate") else None
            restorer = BlsBackend(pb_utils, **network["restorer"])
            self.opened = OpenPipeline(FundusPipeline(restorer, PipelineConfig()), network["restorer"]["model_name"],
                                       gate)
        else:
            from ftrt.runtime import open_pipeline

            gate_file = cfg.get("gate")
            self.opened = open_pipeline(str(here / cfg["restorer"]), "ort", threads=threads, gate=bool(gate_file),
                                        gate_model=str(here / gate_file) if gate_file else "readability")
        self.max_side = int(cfg.get("max_side", 8192))
        self.record = self.opened.model_info()

    def execute(self, requests: list[Any]) -> list[Any]:
        return [self._answer(r) for r in requests]

    def _answer(self, request: Any) -> Any:
        try:
            if self.raw is not None:
                return self._raw(request)
            arr = pb_utils.get_input_tensor_by_name(request, "IMAGE").as_numpy()
            image, record = self.restore(arr)
            return pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor("RESTORED", image),
                pb_utils.Tensor("RECORD", np.array([json.dumps(record, default=float).encode()], dtype=object)),
            ])
        except Exception as exc:  # noqa: BLE001 - every failure becomes this request's error, never the server's
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(msg))

    def _raw(self, request: Any) -> Any:
        names = [i.name for i in self.raw.session.get_inputs()]
        arrays = [pb_utils.get_input_tensor_by_name(request, n).as_numpy() for n in names]
        out_name = self.raw.session.get_outputs()[0].name
        out = self.raw.run_inputs(arrays)
        return pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(out_name, np.ascontiguousarray(out))])

    def restore(self, arr: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        """One photograph: the restored UINT8 image and its record (raises ValueError on a bad request)."""
        from ftrt.io.images import to_uint8
        from ftrt.jobs import restore_image

        why = check_image(arr, self.max_side)
        if why is not None:
            raise ValueError(why)
        res, extra = restore_image(arr.astype(np.float32) / 255.0, self.opened.pipeline, self.opened.gate)
        if not np.isfinite(res.image).all():
            raise ValueError("the model produced NaN or infinite values")
        # Contiguous: the backend copies the buffer as laid out, a transposed view would arrive empty.
        return np.ascontiguousarray(to_uint8(res.image)), {"status": "ok", "shape": list(arr.shape[:2]), **self.record, **extra}

    def finalize(self) -> None:
        if self.raw is not None:
            self.raw.close()
        else:
            self.opened.close()
