"""``ftrt convert DIR --fp16 -o OUT``: a latent-diffusion pipeline with FP16 parts, measured part by part.

Each part is converted with the same rules as a restorer (ftrt.onnx.fp16: FP32 I/O, reductions and head).
The report says what FP16 costs end to end (the whole FP16 pipeline against the FP32 one, same seed, same
photographs) and *where*: the FP32 pipeline with one part swapped for its FP16 copy, for each part. A part
whose swap alone loses more than ``min_psnr`` stays FP32 in the output (the VAE decoder is the usual suspect:
its last layers decide 8-bit pixel values from large activations).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx

from ftrt.io import atomic_write, write_json_atomic
from ftrt.metrics import psnr
from ftrt.engine.sidecar import sha256_file
from ftrt.runtime.diffusion import PARTS, DiffusionBackend, read_pipeline


def _run(directory: Path, images: list[np.ndarray], steps: int | None, threads: int | None) -> list[np.ndarray]:
    with DiffusionBackend(directory, backend="ort", threads=threads, steps=steps, seed=0) as be:
        return [np.clip(be.run(np.ascontiguousarray(im.transpose(2, 0, 1)[None]))[0], 0, 1) for im in images]


def _psnr_vs(ref: list[np.ndarray], got: list[np.ndarray]) -> float:
    return float(np.mean([psnr(g, r) for g, r in zip(got, ref)]))


def convert_pipeline_fp16(src: str | Path, out: str | Path, images: list[np.ndarray], min_psnr: float = 40.0,
                          steps: int | None = None, threads: int | None = None,
                          log: Callable[[str], None] = print) -> dict[str, Any]:
    """Write ``out`` (parts FP16 where they keep ``min_psnr`` dB vs FP32 alone, else FP32) and its report."""
    from ftrt.onnx.fp16 import convert_fp16, name_nodes

    src, out = Path(src), Path(out)
    desc = read_pipeline(src)
    if out.resolve() == src.resolve():
        raise ValueError(f"{out}: write the FP16 pipeline beside the FP32 one, not over it")
    out.mkdir(parents=True, exist_ok=True)
    for p in desc["paths"].values():
        shutil.copyfile(p, out / p.name)
    shutil.copyfile(src / "pipeline.json", out / "pipeline.json")
    ref = _run(src, images, steps, threads)
    half: dict[str, onnx.ModelProto] = {}
    for name in PARTS:
        proto = name_nodes(onnx.load(str(desc["paths"][name])))
        half[name] = convert_fp16(proto, keep_fp32=_scalar_path(proto))
    solo: dict[str, float] = {}
    for name in PARTS:  # the FP32 pipeline with this one part in FP16
        _write_part(out, desc, name, half[name])
        solo[name] = _psnr_vs(ref, _run(out, images, steps, threads))
        log(f"{name} alone in FP16: {solo[name]:.1f} dB vs FP32")
        _restore_part(out, desc, name)
    kept = [n for n in PARTS if solo[n] < min_psnr]
    for name in PARTS:
        if name not in kept:
            _write_part(out, desc, name, half[name])
    total = _psnr_vs(ref, _run(out, images, steps, threads))
    report = {"images": len(images), "steps": steps or desc["steps"], "min_psnr_db": min_psnr,
              "part_alone_psnr_db": {k: round(v, 2) for k, v in solo.items()}, "kept_fp32": kept,
              "pipeline_psnr_db": round(total, 2)}
    final = json.loads((out / "pipeline.json").read_text())
    final["precision"] = {n: ("fp32" if n in kept else "fp16-mixed") for n in PARTS}
    final["fp16_report"] = report
    write_json_atomic(out / "pipeline.json", final)
    return report


def _scalar_path(proto: onnx.ModelProto) -> list[str]:
    """Nodes outside any module (the denoiser's timestep embedding, padding and shape arithmetic) and the
    timestep MLP: tiny, and the converter mistypes the FP32 timestep input's Unsqueeze when it converts them."""
    return [n.name for n in proto.graph.node if n.name.count("/") <= 1 or n.name.startswith("/time/")]


def _set_hash(out: Path, name: str) -> None:
    d = json.loads((out / "pipeline.json").read_text())
    d["parts"][name]["sha256"] = sha256_file(out / d["parts"][name]["file"])
    write_json_atomic(out / "pipeline.json", d)


def _write_part(out: Path, desc: dict[str, Any], name: str, proto: onnx.ModelProto) -> None:
    atomic_write(out / desc["paths"][name].name, lambda tmp: onnx.save(proto, tmp))
    _set_hash(out, name)


def _restore_part(out: Path, desc: dict[str, Any], name: str) -> None:
    shutil.copyfile(desc["paths"][name], out / desc["paths"][name].name)
    _set_hash(out, name)
