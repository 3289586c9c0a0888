"""Accuracy report of a low-precision model against its FP32 original, on held-out photographs.

Each held-out photograph is the clean reference; a seeded mixed degradation of
it is restored by both models through the same fundus pipeline. Reported per
image and worst case: PSNR/SSIM of the low-precision output vs the FP32 output
(what precision alone costs) and of both vs the clean image (what the user
gets); and, when a readability classifier is given, whether it decides the
same on both outputs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ftrt.degrade import degrade
from ftrt.fov import fov_mask
from ftrt.io import read_image, write_json_atomic, write_text_atomic
from ftrt.metrics import psnr, ssim
from ftrt.runtime import open_pipeline
from ftrt.runtime.backends import make_backend

MIN_PSNR = {"int8": 35.0, "fp16": 45.0}
_BACKEND_NAMES = {"ort": "ONNX Runtime CPU", "openvino": "OpenVINO CPU"}


def _finite(v: float) -> float:
    return float(v) if np.isfinite(v) else 99.0  # identical outputs: report a ceiling, not inf, in JSON


def _compare(ref_pipe: Any, low_pipe: Any, images: list[Path], precision: str, seed: int, scorer: Any,
             progress: bool) -> list[dict[str, Any]]:
    """Each photograph degraded, restored by both pipelines, compared with each other and the clean one."""
    rows = []
    for i, path in enumerate(tqdm(images, desc=f"report {precision}", disable=not progress, unit="img")):
        img, _ = read_image(path)
        mask = fov_mask(img)
        clean = img * mask[..., None]
        lq, _ = degrade(clean, "mixed", np.random.default_rng([seed, i]), mask=mask)
        out32 = ref_pipe.restore(lq).image
        out_low = low_pipe.restore(lq).image
        row: dict[str, Any] = {
            "image": path.name,
            "psnr_vs_fp32": _finite(psnr(out_low, out32, mask)),
            "ssim_vs_fp32": float(ssim(out_low, out32, mask)),
            "psnr_ref_fp32": _finite(psnr(out32, clean, mask)),
            "psnr_ref_low": _finite(psnr(out_low, clean, mask)),
            "ssim_ref_fp32": float(ssim(out32, clean, mask)),
            "ssim_ref_low": float(ssim(out_low, clean, mask)),
        }
        if scorer is not None:
            a, b = scorer.score(out32), scorer.score(out_low)
            row["readable_fp32"], row["readable_low"] = a.readable, b.readable
            row["readability_agrees"] = a.readable == b.readable and a.valid == b.valid
        rows.append(row)
    return rows


def precision_report(fp32: str | Path, low: str | Path, images: list[Path], precision: str, seed: int = 0,
                     max_side: int | None = None, scorer: Any = None, threads: int | None = None,
                     progress: bool = True, held_out: bool = True, backend: str = "ort") -> dict[str, Any]:
    """``backend`` runs the low-precision model (``ort``, or ``openvino``, which compiles a Q/DQ file's
    convolutions to INT8 kernels on the CPU); the FP32 reference always runs on ONNX Runtime."""
    with open_pipeline(str(fp32), "ort", threads=threads, max_side=max_side) as ref:
        ref_pipe = ref.pipeline
        # Both at the FP32 model's working size: a converter that dropped the metadata must not change it.
        with open_pipeline(str(low), backend, threads=threads, max_side=ref_pipe.work_side or 0) as low_opened:
            low_pipe = low_opened.pipeline
            rows = _compare(ref_pipe, low_pipe, images, precision, seed, scorer, progress)
    summary: dict[str, Any] = {
        "images": len(rows),
        "held_out": held_out,
        "psnr_vs_fp32_mean": float(np.mean([r["psnr_vs_fp32"] for r in rows])),
        "psnr_vs_fp32_worst": float(min(r["psnr_vs_fp32"] for r in rows)),
        "ssim_vs_fp32_worst": float(min(r["ssim_vs_fp32"] for r in rows)),
        "psnr_ref_fp32_mean": float(np.mean([r["psnr_ref_fp32"] for r in rows])),
        "psnr_ref_low_mean": float(np.mean([r["psnr_ref_low"] for r in rows])),
        "ssim_ref_fp32_mean": float(np.mean([r["ssim_ref_fp32"] for r in rows])),
        "ssim_ref_low_mean": float(np.mean([r["ssim_ref_low"] for r in rows])),
    }
    if scorer is not None:
        summary["readability_agreement"] = float(np.mean([r["readability_agrees"] for r in rows]))
    return {"precision": precision, "fp32_model": str(fp32), "model": str(low), "backend": backend, "seed": seed,
            "summary": summary, "rows": rows}


def check(report: dict[str, Any], min_psnr: float) -> list[str]:
    """Failures against the threshold (empty list: the model passes)."""
    worst = report["summary"]["psnr_vs_fp32_worst"]
    fails = []
    if worst < min_psnr:
        bad = [r["image"] for r in report["rows"] if r["psnr_vs_fp32"] < min_psnr]
        fails.append(f"{report['precision']} output is {worst:.1f} dB from FP32 on its worst image, below "
                     f"{min_psnr:.1f} dB ({', '.join(bad[:5])})")
    return fails


def to_markdown(report: dict[str, Any], extra: dict[str, Any] | None = None) -> str:
    s = report["summary"]
    lines = [
        f"# {report['precision'].upper()} accuracy report",
        "",
        f"Model `{report['model']}` on {_BACKEND_NAMES.get(report.get('backend', 'ort'), report.get('backend'))} "
        f"vs FP32 `{report['fp32_model']}` on ONNX Runtime CPU, "
        f"{s['images']} {'held-out' if s['held_out'] else 'calibration (no held-out left!)'} photographs, "
        f"each degraded (mixed, seed {report['seed']}) and restored by both.",
        "",
    ]
    for k, v in (extra or {}).items():
        lines.append(f"- {k}: {v}")
    lines += [
        "",
        "| | mean | worst |",
        "|---|---:|---:|",
        f"| PSNR vs FP32 output (dB) | {s['psnr_vs_fp32_mean']:.2f} | {s['psnr_vs_fp32_worst']:.2f} |",
        f"| SSIM vs FP32 output | | {s['ssim_vs_fp32_worst']:.5f} |",
        "",
        "| vs clean reference | FP32 | " + report["precision"].upper() + " |",
        "|---|---:|---:|",
        f"| PSNR (dB) | {s['psnr_ref_fp32_mean']:.2f} | {s['psnr_ref_low_mean']:.2f} |",
        f"| SSIM | {s['ssim_ref_fp32_mean']:.4f} | {s['ssim_ref_low_mean']:.4f} |",
    ]
    if "readability_agreement" in s:
        lines.append(f"\nReadability decision agreement FP32 vs {report['precision'].upper()}: "
                     f"{s['readability_agreement']:.0%}")
    lines += ["", "| image | PSNR vs FP32 | SSIM vs FP32 | PSNR ref FP32 | PSNR ref low |", "|---|---:|---:|---:|---:|"]
    for r in report["rows"]:
        lines.append(f"| {r['image']} | {r['psnr_vs_fp32']:.2f} | {r['ssim_vs_fp32']:.5f} | "
                     f"{r['psnr_ref_fp32']:.2f} | {r['psnr_ref_low']:.2f} |")
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], path: str | Path, extra: dict[str, Any] | None = None) -> list[Path]:
    """``path`` as JSON and the same stem as Markdown (``.json``/``.md`` whichever was not given)."""
    path = Path(path)
    json_path = path if path.suffix == ".json" else path.with_suffix(".json")
    md_path = path.with_suffix(".md")
    write_json_atomic(json_path, {**report, "notes": extra or {}})
    write_text_atomic(md_path, to_markdown(report, extra))
    return [json_path, md_path]


def psnr_score(fp32: str | Path, images: list[np.ndarray], threads: int | None = None) -> Callable[[Path], float]:
    """A fast score for the keep search: mean PSNR vs FP32 on prepared NCHW inputs (no pipeline)."""
    with make_backend("ort", str(fp32), threads=threads) as be:
        refs = [np.clip(be.run(x), 0, 1) for x in images]

    def score(candidate: Path) -> float:
        with make_backend("ort", str(candidate), threads=threads) as be:
            vals = [_finite(psnr(np.clip(be.run(x), 0, 1), r)) for x, r in zip(images, refs)]
        return float(np.mean(vals))

    return score
