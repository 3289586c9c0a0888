"""A latent-diffusion pipeline directory (``ftrt export --model ldm -o DIR``) as one restorer backend.

The directory is checked whole before any inference (``read_pipeline``): the description, every part's
presence and SHA-256, and, once the parts are open, each part's own metadata against the description
(part name, latent channels, factor and scale). Then ``run`` is a restorer like any other, so the fundus
pipeline (FOV, working size, tiles, paste back) and the readability gate work unchanged; the sampler is
ftrt.runtime.sampler's, the same code the PyTorch model was validated with.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from ftrt.engine.sidecar import sha256_file
from ftrt.runtime.backends.base import Backend, BackendInfo, TensorSpec
from ftrt.runtime.sampler import TRAIN_STEPS, SamplerSettings, restore_latent

PIPELINE_FILE = "pipeline.json"
PARTS = ("features", "vae_encoder", "denoiser", "vae_decoder")
MAX_PIPELINE_JSON = 1 << 20


class PipelineError(ValueError):
    """A pipeline directory that cannot be run as it is (one line, naming the directory or part)."""


def is_pipeline_dir(path: str | Path) -> bool:
    p = Path(path)
    return p.is_dir() and (p / PIPELINE_FILE).is_file()


def _part_file(directory: Path, entry: Any, name: str) -> Path:
    if not isinstance(entry, dict) or not isinstance(entry.get("file"), str) or not isinstance(entry.get("sha256"), str):
        raise PipelineError(f"{directory}: part {name!r} has no file and sha256 in {PIPELINE_FILE}")
    rel = Path(entry["file"])
    # A description is untrusted input: a part is a plain file inside the directory, never a path out of it.
    if rel.is_absolute() or len(rel.parts) != 1 or rel.name in ("", ".", ".."):
        raise PipelineError(f"{directory}: part {name!r} names {entry['file']!r}, not a file in the directory")
    path = directory / rel
    if not path.is_file():
        raise PipelineError(f"{path}: part {name!r} is missing")
    if sha256_file(path) != entry["sha256"]:
        raise PipelineError(f"{path}: part {name!r} does not match the hash in {PIPELINE_FILE} "
                            "(changed or swapped after export)")
    return path


def read_pipeline(directory: str | Path) -> dict[str, Any]:
    """The checked description of a pipeline directory, with ``paths`` (part -> file) added."""
    d = Path(directory)
    desc_path = d / PIPELINE_FILE
    if not desc_path.is_file():
        raise PipelineError(f"{d}: no {PIPELINE_FILE} (not a diffusion pipeline directory)")
    if desc_path.stat().st_size > MAX_PIPELINE_JSON:
        raise PipelineError(f"{desc_path}: larger than {MAX_PIPELINE_JSON} bytes")
    try:
        desc = json.loads(desc_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PipelineError(f"{desc_path}: not JSON ({exc})") from None
    if not isinstance(desc, dict) or desc.get("format") != "ftrt-latent-diffusion":
        raise PipelineError(f"{desc_path}: not an ftrt latent-diffusion pipeline description")
    if desc.get("version") != 1:
        raise PipelineError(f"{desc_path}: version {desc.get('version')!r}; this ftrt reads version 1")
    sched = desc.get("scheduler")
    if not isinstance(sched, dict) or sched.get("prediction") != "v" or sched.get("schedule") != "cosine" \
            or sched.get("train_steps") != TRAIN_STEPS:
        raise PipelineError(f"{desc_path}: scheduler {sched!r} is not the one this sampler runs "
                            f"(v-prediction, cosine, {TRAIN_STEPS} steps)")
    lat = desc.get("latent")
    ok = isinstance(lat, dict) and isinstance(lat.get("channels"), int) and isinstance(lat.get("factor"), int) \
        and isinstance(lat.get("scale"), (int, float)) and lat["channels"] > 0 and lat["factor"] > 0 \
        and math.isfinite(lat["scale"]) and lat["scale"] > 0
    if not ok:
        raise PipelineError(f"{desc_path}: latent description {lat!r} is malformed")
    for key in ("steps", "pad_multiple"):
        if not isinstance(desc.get(key), int) or desc[key] < 1:
            raise PipelineError(f"{desc_path}: {key} {desc.get(key)!r} is not a positive integer")
    parts = desc.get("parts")
    if not isinstance(parts, dict):
        raise PipelineError(f"{desc_path}: no parts")
    missing = [p for p in PARTS if p not in parts]
    if missing:
        raise PipelineError(f"{desc_path}: parts missing from the description: {', '.join(missing)}")
    paths = {name: _part_file(d, parts[name], name) for name in PARTS}
    if "restorer" in desc:
        paths["restorer"] = _part_file(d, desc["restorer"], "restorer")
    return {**desc, "paths": paths}


class _PartRunner:
    """The sampler's parts over opened backends."""

    def __init__(self, backends: dict[str, Backend], scale: float) -> None:
        self.b = backends
        self.latent_scale = scale

    def features(self, x: np.ndarray) -> np.ndarray:
        return self.b["features"].run(x)

    def encode(self, x: np.ndarray) -> np.ndarray:
        return self.b["vae_encoder"].run(x)

    def denoise(self, z: np.ndarray, t: np.ndarray, cond: np.ndarray, feats: np.ndarray) -> np.ndarray:
        return self.b["denoiser"].run_inputs([z, t, cond, feats])

    def decode(self, z: np.ndarray) -> np.ndarray:
        return self.b["vae_decoder"].run(z)


class DiffusionBackend(Backend):
    """``backend``: what runs each part (auto / ort / openvino ...: ftrt.runtime.backends.make_backend)."""

    # The readability gate may skip this restorer for a photograph that is readable already (RetinaRegen's
    # screening): tens of network calls per image are worth spending only where they can help.
    expensive = True

    def __init__(self, directory: str | Path, backend: str = "auto", threads: int | None = None,
                 steps: int | None = None, seed: int = 0, refine: bool = False) -> None:
        self.directory = Path(directory)
        self.backend_name = backend
        self.threads = threads
        self.desc = read_pipeline(self.directory)
        self.refine = refine
        if refine and "restorer" not in self.desc["paths"]:
            raise PipelineError(f"{self.directory}: --refine needs a CNN restorer in the pipeline "
                                "(export with --refine-from)")
        try:
            strength = float(self.desc.get("refine_strength", 0.4)) if refine else 1.0
            self.settings = SamplerSettings(steps=int(steps or self.desc["steps"]), seed=seed, strength=strength)
        except (TypeError, ValueError) as exc:  # the description's values are untrusted input too
            raise PipelineError(f"{self.directory}: {exc}") from None
        self.backends: dict[str, Backend] = {}
        lat = self.desc["latent"]
        self.info = BackendInfo(
            name=f"diffusion/{backend}", device="cpu", precision="fp32",
            metadata={"model": "restorer", "card_id": str(self.desc.get("card_id", "")),
                      "pad_multiple": str(self.desc["pad_multiple"]), "min_side": "32",
                      "work_side": str(self.desc.get("work_side") or 0), "latent_channels": str(lat["channels"])})
        self.last_timing: dict[str, float] = {}

    def open(self) -> "DiffusionBackend":
        from ftrt.runtime.backends import make_backend

        try:
            for name, path in self.desc["paths"].items():
                be = make_backend(self.backend_name, str(path), threads=self.threads).open()
                self.backends[name] = be
                if name != "restorer":
                    self._check_part(name, path, be)
        except BaseException:
            self.close()
            raise
        first = self.backends["vae_encoder"].info
        self.info.device, self.info.providers = first.device, first.providers
        self.info.precision = first.precision
        return self

    def _check_part(self, name: str, path: Path, be: Backend) -> None:
        meta, lat = be.info.metadata, self.desc["latent"]
        want = {"part": name, "latent_channels": str(lat["channels"]), "latent_factor": str(lat["factor"])}
        for key, value in want.items():
            if meta.get(key) != value:
                raise PipelineError(f"{path}: {key} {meta.get(key)!r} in the part, {value!r} in {PIPELINE_FILE}")
        try:
            scale = float(meta.get("latent_scale", "nan"))
        except ValueError:
            scale = float("nan")
        if not math.isclose(scale, float(lat["scale"]), rel_tol=1e-6):
            raise PipelineError(f"{path}: latent scale {meta.get('latent_scale')!r} in the part, {lat['scale']!r} "
                                f"in {PIPELINE_FILE}")

    @property
    def input_spec(self) -> TensorSpec:
        return TensorSpec("image", ("batch", 3, "height", "width"), "tensor(float)")

    def run(self, batch: np.ndarray) -> np.ndarray:
        if not self.backends:
            self.open()
        x = np.ascontiguousarray(batch, dtype=np.float32)
        timing: dict[str, float] = {}
        init = None
        if self.refine:
            t0 = time.perf_counter()
            init = self.backends["restorer"].run(x)
            timing["restorer"] = round((time.perf_counter() - t0) * 1e3, 3)
        out = restore_latent(_PartRunner(self.backends, float(self.desc["latent"]["scale"])), x, self.settings,
                             init=init, timing=timing)
        self.last_timing = timing
        return np.asarray(out)

    def describe(self) -> dict[str, Any]:
        """What a record says about how the photograph was restored."""
        s = self.settings
        return {"steps": s.steps, "seed": s.seed, "refine": self.refine, "strength": s.strength}

    def close(self) -> None:
        for be in self.backends.values():
            be.close()
        self.backends = {}
