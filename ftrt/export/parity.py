"""Numerical parity of an exported graph against the PyTorch model it came from."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

# Odd sizes on purpose: they exercise the in-graph padding and crop.
PARITY_SHAPES: tuple[tuple[int, int, int, int], ...] = ((1, 3, 64, 64), (1, 3, 97, 131), (2, 3, 45, 33))


class ParityError(RuntimeError):
    """ONNX Runtime output differs from PyTorch beyond the tolerance."""


def parity_check(model: torch.nn.Module, onnx_bytes: bytes, shapes: tuple[tuple[int, ...], ...],
                 tolerance: float, seed: int = 0,
                 make_inputs: Callable[[tuple[int, ...], torch.Generator], tuple[torch.Tensor, ...]] | None = None,
                 ) -> list[dict[str, Any]]:
    """ONNX Runtime against PyTorch on each of ``shapes``: a uniform image of that shape, or the inputs
    ``make_inputs(shape, generator)`` returns for a graph of several (a diffusion pipeline's parts)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for shape in shapes:
        inputs = make_inputs(shape, gen) if make_inputs is not None else (torch.rand(*shape, generator=gen),)
        with torch.no_grad():
            ref = model(*inputs).numpy()
        got = sess.run(None, dict(zip(names, (t.numpy() for t in inputs))))[0]
        if got.shape != ref.shape:
            raise ParityError(f"shape {tuple(shape)}: ONNX output {got.shape} != PyTorch {ref.shape}")
        err = float(np.abs(got - ref).max())
        rows.append({"shape": list(shape), "max_abs_err": err})
        if not err <= tolerance:
            raise ParityError(f"shape {tuple(shape)}: max abs error {err:.3g} vs PyTorch exceeds {tolerance:g}")
    return rows
