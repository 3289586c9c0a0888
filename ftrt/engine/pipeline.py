"""``ftrt build-engine DIR -o OUT``: one TensorRT engine per part of a latent-diffusion pipeline.

The image parts (features, VAE encoder, the refiner's CNN restorer) get the image profiles; the latent parts
(denoiser, VAE decoder) the same profiles at 1/factor (``scaled_profile``), so every shape the sampler
produces for a photograph that fits an image profile fits its latent profile too. ``OUT/pipeline.json`` is
the source description with each part pointing at its engine (and its hash), so ``ftrt restore --model OUT``
runs the engines through the same checks as the ONNX parts.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Callable

from ftrt.engine.profiles import EngineProfile, default_profiles, scaled_profile
from ftrt.io import write_json_atomic
from ftrt.engine.sidecar import sha256_file
from ftrt.runtime.diffusion import PARTS, PIPELINE_FILE, read_pipeline

IMAGE_PARTS = ("features", "vae_encoder", "restorer")


def part_profiles(desc: dict[str, Any], image_profiles: list[EngineProfile]) -> dict[str, list[EngineProfile]]:
    """The profiles each part is built with."""
    factor = int(desc["latent"]["factor"])
    latent = [scaled_profile(p, factor) for p in image_profiles]
    return {name: image_profiles if name in IMAGE_PARTS else latent for name in desc["paths"]}


def build_pipeline_engines(src: str | Path, out: str | Path, opts: Any,
                           build: Callable[..., dict[str, Any]] | None = None,
                           log: Callable[[str], None] = print) -> dict[str, Any]:
    """Build every part of ``src`` into ``out`` (``opts``: ftrt.engine.build.BuildOptions; its profiles are
    image profiles, default: the working side's); returns the new description. ``build`` is
    ftrt.engine.build.build_engine (a test passes a stand-in: the plan is tested without a GPU)."""
    if build is None:
        from ftrt.engine.build import build_engine
        from ftrt.engine.host import trt_module

        trt_module()  # one clear line, before anything is written, where TensorRT is missing
        build = build_engine
    src, out = Path(src), Path(out)
    desc = read_pipeline(src)
    if out.resolve() == src.resolve():
        raise ValueError(f"{out}: write the engines beside the ONNX pipeline, not into it")
    image_profiles = list(opts.profiles) or default_profiles(int(desc.get("work_side") or 0))
    profiles = part_profiles(desc, image_profiles)
    out.mkdir(parents=True, exist_ok=True)
    new = json.loads((src / PIPELINE_FILE).read_text())
    for name, path in desc["paths"].items():
        engine = out / f"{name}.engine"
        log(f"{name}: {len(profiles[name])} profile(s), {', '.join(map(str, profiles[name]))}")
        build(path, engine, dataclasses.replace(opts, profiles=profiles[name]), log=log)
        entry = {"file": engine.name, "sha256": sha256_file(engine), "onnx_sha256": sha256_file(path)}
        if name in PARTS:
            new["parts"][name] = {**new["parts"][name], **entry}
        else:
            new[name] = {**new[name], **entry}
    new["engines"] = {"image_profiles": [p.as_dict() for p in image_profiles]}
    write_json_atomic(out / PIPELINE_FILE, new)
    return new
