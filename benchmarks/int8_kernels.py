"""Why INT8 is not faster than FP32 on ONNX Runtime's CPU provider for the restorers: kernel timings.

ORT's integer GEMM on a CPU with AMX or VNNI runs many times the FP32 rate, yet
the INT8 Q/DQ restorer runs slower than FP32. This driver times the pieces on
the restorer's own shapes, in ORT, so the reason is a measurement:

- a large square GEMM, FP32 ``MatMul`` vs ``MatMulInteger`` (u8 x s8): the integer peak;
- a chain of four 5x5 grouped convolutions (8 channels per group, as in the dense
  blocks) at each encoder stage of res-s at 512^2, as FP32 the way the file holds
  them, FP32 in ftrt's row-pair form (what ``OrtBackend`` runs), INT8 Q/DQ grouped
  and INT8 Q/DQ made dense (block-diagonal weights, so ORT's integer GEMM sees
  wider matrices). ORT fuses each Q/DQ convolution into ``QLinearConv``;
- the dense blocks' MLP (1x1 convolutions C -> 2C -> C) at each stage, FP32 and INT8 Q/DQ.

If no INT8 kernel beats FP32 on the convolutions, an INT8 graph cannot beat the FP32
one on ORT: its Quantize/Dequantize steps only add to the FP32 LayerNorm, GELU and
residual work both keep.

    python benchmarks/int8_kernels.py [--size 512] [--runs 7] [--threads 2]

Writes ``benchmarks/results/int8_kernels.md``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import cpu_name, invocation, module_version, time_ms, write_report  # noqa: E402

CHAIN = 4  # convolutions per timed graph: the NCHWc reorders at its ends are paid once, as inside the model
GROUP_WIDTH = 8
Variant = tuple[bytes, tuple[int, ...], int]  # model, input shape, multiply-adds per convolution


def _model(nodes: list, inputs: list, inits: list, opset: int = 19) -> bytes:
    from onnx import TensorProto, helper

    graph = helper.make_graph(nodes, "kernels", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]).SerializeToString()


def gemm_models(n: int, rng: np.random.Generator) -> dict[str, bytes]:
    from onnx import TensorProto, helper, numpy_helper

    fp32 = _model([helper.make_node("MatMul", ["a", "b"], ["y"])],
                  [helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n])],
                  [numpy_helper.from_array(rng.standard_normal((n, n)).astype(np.float32), "b")])
    int8 = _model([helper.make_node("MatMulInteger", ["a", "b"], ["acc"]),
                   helper.make_node("Cast", ["acc"], ["y"], to=TensorProto.FLOAT)],
                  [helper.make_tensor_value_info("a", TensorProto.UINT8, [n, n])],
                  [numpy_helper.from_array(rng.integers(-127, 128, (n, n), dtype=np.int8), "b")])
    return {"fp32": fp32, "int8": int8}


def conv_chain(channels: int, height: int, width: int, groups: int, kernel: tuple[int, int], quantized: bool,
               rng: np.random.Generator, widths: list[int] | None = None) -> bytes:
    """Four convolutions in a row; ``quantized``: symmetric INT8 Q/DQ around each (per-channel weights).

    ``widths`` gives each convolution's output channels (default: all ``channels``).
    """
    from onnx import TensorProto, helper, numpy_helper

    pads = [kernel[0] // 2, kernel[1] // 2] * 2
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, height, width])]
    widths = widths or [channels] * CHAIN
    nodes, inits, cur, c_in = [], [], "x", channels
    if quantized:
        inits += [numpy_helper.from_array(np.array(0.02, np.float32), "s"),
                  numpy_helper.from_array(np.array(0, np.int8), "z")]
        nodes.append(helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q0"]))
        cur = "q0"
    for i, c_out in enumerate(widths):
        w_shape = (c_out, c_in // groups, *kernel)
        c_in = c_out
        if quantized:
            inits += [numpy_helper.from_array(rng.integers(-127, 128, w_shape, dtype=np.int8), f"w{i}"),
                      numpy_helper.from_array(np.full(c_out, 0.01, np.float32), f"ws{i}"),
                      numpy_helper.from_array(np.zeros(c_out, np.int8), f"wz{i}")]
            nodes += [helper.make_node("DequantizeLinear", [cur, "s", "z"], [f"d{i}"]),
                      helper.make_node("DequantizeLinear", [f"w{i}", f"ws{i}", f"wz{i}"], [f"dw{i}"], axis=0),
                      helper.make_node("Conv", [f"d{i}", f"dw{i}"], [f"c{i}"], group=groups, pads=pads),
                      helper.make_node("QuantizeLinear", [f"c{i}", "s", "z"], [f"q{i + 1}"])]
            cur = f"q{i + 1}"
        else:
            inits.append(numpy_helper.from_array(0.05 * rng.standard_normal(w_shape).astype(np.float32), f"w{i}"))
            nodes.append(helper.make_node("Conv", [cur, f"w{i}"], [f"c{i}"], group=groups, pads=pads))
            cur = f"c{i}"
    nodes.append(helper.make_node("DequantizeLinear", [cur, "s", "z"], ["y"]) if quantized
                 else helper.make_node("Identity", [cur], ["y"]))
    return _model(nodes, inputs, inits)


def mlp_variants(channels: int, side: int, rng: np.random.Generator) -> dict[str, Variant]:
    """The MLP's 1x1 convolutions, C -> 2C -> C twice; multiply-adds are the chain's mean per convolution."""
    widths = [2 * channels, channels] * (CHAIN // 2)
    macs = side * side * 2 * channels * channels
    shape = (1, channels, side, side)
    return {"FP32 1x1": (conv_chain(channels, side, side, 1, (1, 1), False, rng, widths), shape, macs),
            "INT8 Q/DQ 1x1": (conv_chain(channels, side, side, 1, (1, 1), True, rng, widths), shape, macs)}


def conv_variants(channels: int, side: int, rng: np.random.Generator) -> dict[str, Variant]:
    """name -> (model, input shape, multiply-adds per convolution that the model's maths needs)."""
    groups = channels // GROUP_WIDTH
    real = side * side * channels * GROUP_WIDTH * 25
    full = (1, channels, side, side)
    pairs = (1, 2 * channels, side // 2, side)
    return {
        "FP32 grouped (as in the file)": (conv_chain(channels, side, side, groups, (5, 5), False, rng), full, real),
        "FP32 row pairs (ftrt's ORT layout)": (
            conv_chain(2 * channels, side // 2, side, groups, (3, 5), False, rng), pairs, real),
        "INT8 Q/DQ grouped": (conv_chain(channels, side, side, groups, (5, 5), True, rng), full, real),
        "INT8 Q/DQ dense (block-diagonal)": (conv_chain(channels, side, side, 1, (5, 5), True, rng), full, real),
    }


def session(model: bytes, threads: int):  # noqa: ANN201 - onnxruntime type
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def timed(model: bytes, feed: np.ndarray, threads: int, warmup: int, runs: int) -> float:
    sess = session(model, threads)
    name = sess.get_inputs()[0].name
    run: Callable[[], object] = lambda: sess.run(None, {name: feed})  # noqa: E731
    return statistics.median(time_ms(run, warmup, runs))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=512, help="the restorer's input side; stage k runs at size/2^k")
    ap.add_argument("--gemm", type=int, default=2048)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "int8_kernels.md"))
    args = ap.parse_args()
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    n = args.gemm
    feeds: dict[str, np.ndarray] = {"fp32": rng.standard_normal((n, n)).astype(np.float32),
             "int8": rng.integers(0, 256, (n, n), dtype=np.uint8)}
    gemm = {k: timed(m, feeds[k], args.threads, args.warmup, args.runs) for k, m in gemm_models(n, rng).items()}
    rate = {k: 2 * n**3 / (ms * 1e-3) / 1e9 for k, ms in gemm.items()}
    print(f"GEMM {n}^3: FP32 {gemm['fp32']:.1f} ms ({rate['fp32']:.0f} GFLOP/s), "
          f"INT8 {gemm['int8']:.1f} ms ({rate['int8']:.0f} GOP/s)", flush=True)

    rows: dict[str, list[tuple[str, str, float, float]]] = {"grouped": [], "mlp": []}
    families: dict[str, Callable[[int, int, np.random.Generator], dict[str, Variant]]] = {
        "grouped": conv_variants, "mlp": mlp_variants}
    for stage, channels in enumerate((16, 32, 64)):  # res-s encoder widths
        side = args.size >> stage
        for kind, variants in families.items():
            for name, (model, shape, macs) in variants(channels, side, rng).items():
                feed = rng.standard_normal(shape).astype(np.float32)
                per_conv = timed(model, feed, args.threads, args.warmup, args.runs) / CHAIN
                row = (f"{channels} ch, {side}x{side}", name, per_conv, 2 * macs / (per_conv * 1e-3) / 1e9)
                rows[kind].append(row)
                print(f"{row[0]} {name}: {per_conv:.2f} ms per conv", flush=True)

    lines = [
        "# INT8 vs FP32 kernels in ONNX Runtime's CPU provider",
        "",
        f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} by `{invocation()}`.",
        f"Machine: {cpu_name()}, {os.cpu_count()} cores visible; {args.threads} threads. onnxruntime {ort.__version__} "
        f"(numpy {module_version('numpy')}). Median of {args.runs} runs after {args.warmup} warm-up runs.",
        "",
        f"## Integer GEMM peak ({n} x {n} x {n})",
        "",
        "| kernel | ms | G(FL)OP/s |",
        "|---|---:|---:|",
        f"| FP32 MatMul | {gemm['fp32']:.1f} | {rate['fp32']:.0f} |",
        f"| INT8 MatMulInteger (u8 x s8) | {gemm['int8']:.1f} | {rate['int8']:.0f} |",
        "",
        f"## 5x5 grouped convolutions of res-s's dense blocks ({GROUP_WIDTH} channels per group), input {args.size}^2",
        "",
        f"Per convolution, from a chain of {CHAIN}. Useful rate: the multiply-adds the layer's maths needs (grouped), "
        "whatever the kernel computes; the dense INT8 variant computes (channels/8) times as many.",
        "",
        "| stage | form | ms per conv | useful G(FL)OP/s |",
        "|---|---|---:|---:|",
    ]
    lines += [f"| {stage} | {name} | {ms:.2f} | {useful:.0f} |" for stage, name, ms, useful in rows["grouped"]]
    lines += [
        "",
        "## The MLP's 1x1 convolutions (C -> 2C -> C)",
        "",
        "| stage | form | ms per conv | G(FL)OP/s |",
        "|---|---|---:|---:|",
    ]
    lines += [f"| {stage} | {name} | {ms:.2f} | {rate:.0f} |" for stage, name, ms, rate in rows["mlp"]]
    write_report(args.out, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
