"""Grouped convolutions laid out for ONNX Runtime's blocked (NCHWc) CPU kernels.

ONNX Runtime's CPU provider runs a convolution in its fast blocked kernels
(domain ``com.microsoft.nchwc``) only when each group's input and output
channel counts are multiples of the MLAS block: 8 channels on AVX2 CPUs, 16 on
AVX-512 ones. ftrt's dense blocks use groups of 8 channels, so on an AVX-512
CPU every grouped 5x5 convolution falls back to im2col plus one small GEMM per
group, and the activations leave and re-enter the blocked layout around each
one. Merging neighbouring groups into one group with a block-diagonal weight
(zeros between the original groups) computes the same sums (the added terms
are exact zeros) with twice the multiply-adds, but in the blocked kernels:
1.2-1.3x faster for the whole restorer on an AVX-512 Xeon. Where the input
height is known to be even, ``cpu_model`` first runs the 5x5 ones on row pairs
instead (ftrt.onnx.passes.row_pairs: 83 % real multiply-adds instead of 50 %,
another 1.2x) and widens only the rest; the 3-channel head computes four rows
at a time (ftrt.onnx.passes.row_phases) and channel LayerNorms take their means as
matrix products (ftrt.onnx.passes.channel_norm). All are load-time rewrites for the
CPU provider only: the ONNX file keeps its real grouped convolutions, which is
what TensorRT and the GPU providers want.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from ftrt.onnx.graph import readers
from ftrt.onnx.passes.channel_norm import channel_norms_as_matmul
from ftrt.onnx.passes.row_pairs import row_pair_convs
from ftrt.onnx.passes.row_phases import row_phase_convs
from ftrt.onnx.passes.subpixel import subpixel_upsampling

if TYPE_CHECKING:  # onnx is optional for the runtime: without it the file runs as exported
    import onnx

# More than this many times the multiply-adds costs more than the blocked kernels save (measured:
# merging ftrt's 8-channel groups into 32-channel ones is no faster than leaving them alone).
MAX_WASTE = 2


def _cpu_features() -> dict[str, bool]:
    """numpy's runtime CPU feature table (works on every OS numpy supports)."""
    for mod in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):
        try:
            return dict(__import__(mod, fromlist=["__cpu_features__"]).__cpu_features__)
        except (ImportError, AttributeError):
            continue
    return {}


def mlas_block_size(features: dict[str, bool] | None = None, machine: str | None = None) -> int:
    """The channel block of ONNX Runtime's NCHWc CPU kernels here: 16 with AVX-512F, 8 with AVX2, else 0.

    0 means "not known to use NCHWc", and no rewrite is done.
    """
    machine = (machine or platform.machine()).lower()
    if machine not in ("x86_64", "amd64", "x64"):  # 64-bit x86: where the rewrite was measured
        return 0
    features = _cpu_features() if features is None else features
    if features.get("AVX512F"):
        return 16
    if features.get("AVX2") and features.get("FMA3"):
        return 8
    return 0


def _merge_factor(groups: int, cin_g: int, cout_g: int, block: int) -> int:
    """Smallest number of neighbouring groups to merge so both channel counts per group fill whole blocks."""
    if cin_g % block == 0 and cout_g % block == 0:
        return 1
    for f in range(2, MAX_WASTE + 1):
        if groups % f == 0 and (cin_g * f) % block == 0 and (cout_g * f) % block == 0:
            return f
    return 1


def block_diagonal(weight: np.ndarray, groups: int, factor: int) -> np.ndarray:
    """Conv weight (O, I/groups, kh, kw) rewritten for ``groups // factor`` groups, same result."""
    cout, cin_g = weight.shape[:2]
    cout_g = cout // groups
    out = np.zeros((cout, cin_g * factor) + weight.shape[2:], dtype=weight.dtype)
    for g in range(groups):
        slot = g % factor  # this group's place inside the merged one
        rows = slice(g * cout_g, (g + 1) * cout_g)
        out[rows, slot * cin_g:(slot + 1) * cin_g] = weight[rows]
    return out


def widen_groups(model: "onnx.ModelProto", block: int) -> list[str]:
    """Rewrite, in place, the FP32 grouped Convs whose groups do not fill NCHWc blocks; returns their names.

    Depthwise convs (already NCHWc), convs whose weight is not an FP32
    initializer (Q/DQ or FP16 graphs) and convs that would need more than
    ``MAX_WASTE`` times the work are left alone.
    """
    import onnx
    from onnx import numpy_helper

    if block <= 0:
        return []
    inits = {t.name: t for t in model.graph.initializer}
    uses = {name: len(nodes) for name, nodes in readers(model).items()}
    changed: list[str] = []
    for node in model.graph.node:
        if node.op_type != "Conv" or node.domain not in ("", "ai.onnx") or len(node.input) < 2:
            continue
        group = next((a for a in node.attribute if a.name == "group"), None)
        tensor = inits.get(node.input[1])
        if group is None or group.i <= 1 or tensor is None or tensor.data_type != onnx.TensorProto.FLOAT:
            continue
        weight = numpy_helper.to_array(tensor)
        cin_g, cout_g = weight.shape[1], weight.shape[0] // group.i
        if cin_g == 1 and cout_g == 1:
            continue  # depthwise: MLAS has its own blocked kernel
        factor = _merge_factor(group.i, cin_g, cout_g, block)
        if factor == 1:
            continue
        merged = numpy_helper.from_array(block_diagonal(weight, group.i, factor), tensor.name)
        if uses.get(tensor.name, 0) > 1:  # shared weight: this node gets its own copy, the last user the original
            uses[tensor.name] -= 1
            merged.name = f"{tensor.name}__nchwc{len(changed)}"
            node.input[1] = merged.name
            model.graph.initializer.append(merged)
        else:
            tensor.CopyFrom(merged)
        group.i //= factor
        changed.append(node.name or node.output[0])
    return changed


def _count(items: list[str], noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


@dataclass(frozen=True)
class CpuPass:
    """One load-time rewrite: ``run(model, block, pad_multiple)`` edits the graph in place and returns what it
    changed; ``note(changed, block)`` says so in the backend's graph line."""

    name: str
    run: Callable[["onnx.ModelProto", int, int], list[str]]
    note: Callable[[list[str], int], str]


# In the order they run: the head and the 5x5 convs claim their convs before widening sees the rest.
CPU_PASSES: tuple[CpuPass, ...] = (
    CpuPass("row_phases", lambda m, block, pad: row_phase_convs(m, block, pad),
            lambda c, block: f"{_count(c, 'narrow-output conv')} on several rows at a time"),
    CpuPass("row_pairs", lambda m, block, pad: row_pair_convs(m, block, pad),
            lambda c, block: f"{_count(c, 'grouped 5x5 conv')} on row pairs ({block} real channels per group)"),
    CpuPass("widen_groups", lambda m, block, pad: widen_groups(m, block),
            lambda c, block: f"{_count(c, 'grouped conv')} widened to {block}-channel NCHWc groups"),
    CpuPass("subpixel", lambda m, block, pad: subpixel_upsampling(m),
            lambda c, block: f"{_count(c, 'upsampling conv')} at low resolution"),
    CpuPass("channel_norm", lambda m, block, pad: channel_norms_as_matmul(m),
            lambda c, block: f"{_count(c, 'channel LayerNorm')} with means as matrix products"),
)
# The order the graph line names them in (the work they save, largest first).
NOTE_ORDER = ("row_pairs", "widen_groups", "subpixel", "row_phases", "channel_norm")


def run_passes(model: "onnx.ModelProto", block: int, passes: tuple[CpuPass, ...] = CPU_PASSES) -> str:
    """Run ``passes`` on ``model`` in place; returns the note of what changed ('' when nothing did)."""
    meta = {p.key: p.value for p in model.metadata_props}
    pad_multiple = int(meta.get("pad_multiple", "0") or 0)
    changed = {p.name: (p, p.run(model, block, pad_multiple)) for p in passes}
    order = [n for n in NOTE_ORDER if n in changed] + [n for n in changed if n not in NOTE_ORDER]
    return ", ".join(changed[n][0].note(changed[n][1], block) for n in order if changed[n][1])


def cpu_model(path: str | Path, block: int | None = None) -> tuple[bytes | None, str]:
    """``path`` rewritten for this CPU's NCHWc kernels (see the module docstring), or None and why it runs as is."""
    block = mlas_block_size() if block is None else block
    if block == 0:
        return None, "as exported (this CPU has no NCHWc block size ftrt knows)"
    try:
        import onnx
    except ImportError:
        return None, "as exported (pip install onnx for the CPU layout rewrites)"
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - a bad file gets ONNX Runtime's own error when the session loads it
        return None, "as exported (onnx could not parse it)"
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
        return None, "as exported (weights in external data files)"
    done = run_passes(model, block)
    if not done:
        return None, "as exported (no FP32 grouped conv, upsampling conv or channel LayerNorm to rewrite)"
    return model.SerializeToString(), done
