"""Export a latent-diffusion restorer as a pipeline directory: one ONNX per part plus ``pipeline.json``.

    features.onnx      image (N,3,H,W)                              -> features (N,384,7,7)
    vae_encoder.onnx   image (N,3,H,W)                              -> latent (N,C,H/4,W/4)  (the mean)
    denoiser.onnx      latent, timestep (N,), condition, features   -> v (N,C,h,w)
    vae_decoder.onnx   latent (N,C,h,w)                             -> image (N,3,4h,4w)
    restorer.onnx      optional: the CNN restorer the refiner mode starts from (a copy of its ONNX)

Every part has dynamic batch and spatial dims, is checked by the ONNX checker and against PyTorch on two
sizes, and is named in ``pipeline.json`` with its SHA-256, so the runtime refuses a directory whose parts
were swapped or damaged (ftrt.runtime.diffusion.read_pipeline).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import nn

from ftrt import __version__
from ftrt.export.onnx_export import export_torchscript
from ftrt.export.parity import ParityError, parity_check
from ftrt.io import atomic_write, write_json_atomic
from ftrt.models.ldm import LatentDiffusionRestorer
from ftrt.onnx.metadata import set_metadata
from ftrt.engine.sidecar import sha256_file
from ftrt.runtime.sampler import TRAIN_STEPS

PIPELINE_FORMAT = "ftrt-latent-diffusion"
PIPELINE_VERSION = 1


class _Encoder(nn.Module):
    def __init__(self, m: LatentDiffusionRestorer) -> None:
        super().__init__()
        self.vae = m.vae

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.vae.encode(image)[0]


class _Decoder(nn.Module):
    def __init__(self, m: LatentDiffusionRestorer) -> None:
        super().__init__()
        self.vae = m.vae

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(latent)


def _parts(m: LatentDiffusionRestorer) -> dict[str, tuple[nn.Module, list[str], list[str], dict[str, dict[int, str]]]]:
    """name -> (module, input names, output names, dynamic axes)."""
    nchw = {0: "batch", 2: "height", 3: "width"}
    lat = {0: "batch", 2: "lat_h", 3: "lat_w"}
    return {
        "features": (m.features, ["image"], ["features"], {"image": nchw, "features": {0: "batch"}}),
        "vae_encoder": (_Encoder(m), ["image"], ["latent"], {"image": nchw, "latent": lat}),
        "denoiser": (m.denoiser, ["latent", "timestep", "condition", "features"], ["v"],
                     {"latent": lat, "timestep": {0: "batch"}, "condition": lat, "features": {0: "batch"}, "v": lat}),
        "vae_decoder": (_Decoder(m), ["latent"], ["image"], {"latent": lat, "image": nchw}),
    }


def _sample_inputs(name: str, m: LatentDiffusionRestorer, n: int, h: int, w: int,
                   gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    c, f = m.vae.latent, m.vae.pad_multiple
    lh, lw = -(-h // f), -(-w // f)
    if name in ("features", "vae_encoder"):
        return (torch.rand(n, 3, h, w, generator=gen),)
    if name == "vae_decoder":
        return (torch.randn(n, c, lh, lw, generator=gen),)
    return (torch.randn(n, c, lh, lw, generator=gen), torch.rand(n, generator=gen) * (TRAIN_STEPS - 1),
            torch.randn(n, c, lh, lw, generator=gen), torch.randn(n, m.features.channels, 7, 7, generator=gen))


def _parity(name: str, module: nn.Module, proto: onnx.ModelProto, m: LatentDiffusionRestorer,
            tolerance: float) -> list[dict[str, Any]]:
    def inputs(shape: tuple[int, ...], gen: torch.Generator) -> tuple[torch.Tensor, ...]:
        return _sample_inputs(name, m, shape[0], shape[2], shape[3], gen)

    try:
        return parity_check(module, proto.SerializeToString(), ((1, 3, 64, 64), (2, 3, 97, 131)), tolerance,
                            make_inputs=inputs)
    except ParityError as exc:
        raise ParityError(f"{name}: {exc}") from None


def export_pipeline(model: LatentDiffusionRestorer, out_dir: str | Path, *, meta: dict[str, Any] | None = None,
                    opset: int = 17, steps: int = 8, refine_from: str | Path | None = None,
                    refine_strength: float = 0.4, tolerance: float = 1e-3) -> dict[str, Any]:
    """Write the parts and ``pipeline.json`` into ``out_dir``; returns the pipeline description.

    ``refine_from``: an ONNX restorer copied in as ``restorer.onnx`` for ``--refine`` (start from its output
    at ``refine_strength``). Tolerance 1e-3: the denoiser's outputs are latents of unit scale, not pixels.
    """
    meta = meta or {}
    model = model.eval()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    scale = float(model.latent_scale)
    parts: dict[str, Any] = {}
    for name, (module, ins, outs, axes) in _parts(model).items():
        gen = torch.Generator().manual_seed(1)
        proto = export_torchscript(module.eval(), _sample_inputs(name, model, 1, 64, 64, gen), ins, outs, axes, opset)
        set_metadata(proto, {"ftrt_version": __version__, "model": "diffusion-part", "part": name,
                             "latent_channels": str(model.vae.latent), "latent_factor": str(model.vae.pad_multiple),
                             "latent_scale": repr(scale), "card_id": str(meta.get("card_id", ""))})
        onnx.checker.check_model(proto, full_check=True)
        parity = _parity(name, module, proto, model, tolerance)
        path = out / f"{name}.onnx"
        atomic_write(path, lambda tmp, p=proto: onnx.save(p, tmp))
        parts[name] = {"file": path.name, "sha256": sha256_file(path), "inputs": ins, "outputs": outs, "parity": parity}
    desc: dict[str, Any] = {
        "format": PIPELINE_FORMAT, "version": PIPELINE_VERSION, "ftrt_version": __version__,
        "preset": meta.get("preset", "ldm"), "card_id": meta.get("card_id", ""), "kwargs": meta.get("kwargs", {}),
        "scheduler": {"type": "ddim", "eta": 0.0, "prediction": "v", "schedule": "cosine",
                      "train_steps": TRAIN_STEPS},
        "steps": steps, "refine_strength": refine_strength,
        "latent": {"channels": model.vae.latent, "factor": model.vae.pad_multiple, "scale": scale},
        "normalisation": {"range": [0.0, 1.0], "channels": "RGB", "layout": "NCHW"},
        "pad_multiple": model.pad_multiple, "work_side": meta.get("work_side"),
        "training": {k: meta.get(k) for k in ("steps", "train_seconds", "validation", "phase") if k in meta},
        "parts": parts,
    }
    if refine_from is not None:
        dst = out / "restorer.onnx"
        shutil.copyfile(refine_from, dst)
        desc["restorer"] = {"file": dst.name, "sha256": sha256_file(dst), "source": Path(refine_from).name}
    write_json_atomic(out / "pipeline.json", desc)
    return desc
