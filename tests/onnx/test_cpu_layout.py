"""Grouped convs widened for ONNX Runtime's NCHWc kernels: same outputs, only where it applies."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from ftrt.runtime.backends.ort import OrtBackend
from ftrt.onnx.passes.channel_norm import channel_norms_as_matmul
from ftrt.onnx.cpu_layout import block_diagonal, cpu_model, mlas_block_size, widen_groups
from ftrt.runtime.loaders import CpuLayoutLoader
from ftrt.runtime.models import WEIGHTS_DIR
from ftrt.onnx.passes.row_pairs import height_multiples, row_pair_convs, row_pair_weight
from ftrt.onnx.passes.row_phases import row_phase_convs, row_phase_weight
from ftrt.onnx.passes.subpixel import phase_weights, subpixel_upsampling


def _conv_model(groups: int, cin: int, cout: int, dtype: int = TensorProto.FLOAT, shared: bool = False,
                seed: int = 0) -> onnx.ModelProto:
    """x -> grouped 5x5 Conv (-> a second Conv sharing the weight when ``shared``)."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((cout, cin // groups, 5, 5)).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    np_dtype = helper.tensor_dtype_to_np_dtype(dtype)
    inits = [numpy_helper.from_array(w.astype(np_dtype), "w"), numpy_helper.from_array(b.astype(np_dtype), "b")]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv_a", group=groups, pads=[2, 2, 2, 2])]
    out = "y"
    if shared:
        assert cin == cout
        nodes.append(helper.make_node("Conv", ["y", "w", "b"], ["z"], name="conv_b", group=groups, pads=[2, 2, 2, 2]))
        out = "z"
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", dtype, [1, cin, "h", "w"])],
                              [helper.make_tensor_value_info(out, dtype, [1, cout, "h", "w"])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def _close(a: np.ndarray, b: np.ndarray) -> None:
    """Equal up to float summation order (outputs of random 5x5 convs reach the hundreds)."""
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-6 * float(np.abs(b).max()) + 1e-6)


def _group(model: onnx.ModelProto, name: str) -> int:
    node = next(n for n in model.graph.node if n.name == name)
    return next(a.i for a in node.attribute if a.name == "group")


@pytest.mark.parametrize("groups,cin,cout,block,expect_groups", [
    (4, 32, 32, 16, 2),    # ftrt's 8-channel groups on AVX-512: pairs merged
    (4, 32, 32, 8, 4),     # AVX2: 8-channel groups already fill a block
    (8, 32, 32, 16, 8),    # 4-channel groups would need 4x the work: left alone
    (2, 16, 16, 16, 1),    # res-s stage 0: two 8-channel groups become one dense conv
    (4, 64, 32, 16, 2),    # conv2's shape: 16 inputs, 8 outputs per group
])
def test_widened_conv_gives_the_same_output(groups: int, cin: int, cout: int, block: int, expect_groups: int) -> None:
    model = _conv_model(groups, cin, cout)
    x = np.random.default_rng(1).standard_normal((1, cin, 23, 31)).astype(np.float32)
    ref = _run(model, x)
    changed = widen_groups(model, block)
    assert _group(model, "conv_a") == expect_groups
    assert changed == ([] if expect_groups == groups else ["conv_a"])
    onnx.checker.check_model(model, full_check=True)
    _close(_run(model, x), ref)


def test_block_diagonal_places_each_group_on_its_own_slot() -> None:
    w = np.arange(4 * 2 * 1 * 1, dtype=np.float32).reshape(4, 2, 1, 1) + 1  # 4 groups of 2 -> 1 output each
    merged = block_diagonal(w, groups=4, factor=2)
    assert merged.shape == (4, 4, 1, 1)
    np.testing.assert_array_equal(merged[:, :, 0, 0], [[1, 2, 0, 0], [0, 0, 3, 4], [5, 6, 0, 0], [0, 0, 7, 8]])


def test_shared_weight_gets_its_own_copy_and_other_dtypes_are_left_alone() -> None:
    model = _conv_model(4, 32, 32, shared=True)
    x = np.random.default_rng(2).standard_normal((1, 32, 17, 19)).astype(np.float32)
    ref = _run(model, x)
    assert widen_groups(model, 16) == ["conv_a", "conv_b"]
    names = [n.input[1] for n in model.graph.node]
    assert names[1] == "w" and names[0] != "w"  # the first user got a private copy
    _close(_run(model, x), ref)
    half = _conv_model(4, 32, 32, dtype=TensorProto.FLOAT16)
    assert widen_groups(half, 16) == [] and _group(half, "conv_a") == 4


def test_block_size_follows_the_cpu() -> None:
    assert mlas_block_size({"AVX512F": True, "AVX2": True, "FMA3": True}, "x86_64") == 16
    assert mlas_block_size({"AVX512F": False, "AVX2": True, "FMA3": True}, "AMD64") == 8
    assert mlas_block_size({"SSE3": True}, "x86_64") == 0
    assert mlas_block_size({"ASIMD": True}, "aarch64") == 0
    assert mlas_block_size() in (0, 8, 16)


def test_cpu_model_says_why_it_leaves_a_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(_conv_model(4, 32, 32), path)
    data, note = cpu_model(path, block=16)
    assert data is not None and "1 grouped conv widened to 16" in note
    assert cpu_model(path, block=0) == (None, "as exported (this CPU has no NCHWc block size ftrt knows)")
    assert cpu_model(path, block=8)[0] is None
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf at all")
    assert cpu_model(bad, block=16)[0] is None


# The note for each MLAS block size: both branches are checked on every machine (the rewritten graph is
# plain ONNX, valid on any CPU; only its speed depends on the block the CPU really has).
SHIPPED_NOTES = {
    8: ("3 upsampling convs at low resolution, 1 narrow-output conv on several rows at a time, "
        "15 channel LayerNorms with means as matrix products"),
    16: ("36 grouped 5x5 convs on row pairs (16 real channels per group), "
         "9 grouped convs widened to 16-channel NCHWc groups, "
         "3 upsampling convs at low resolution, "
         "1 narrow-output conv on several rows at a time, "
         "15 channel LayerNorms with means as matrix products"),
}


@pytest.mark.parametrize("block", [8, 16])
def test_ort_backend_runs_the_shipped_restorer_the_same_either_way(block: int) -> None:
    model = WEIGHTS_DIR / "res-s.onnx"
    rng = np.random.default_rng(3)
    with OrtBackend(model, threads=1) as plain, OrtBackend(CpuLayoutLoader(model, block), threads=1) as laid_out:
        assert plain.info.graph == "as exported"
        # Encoder and decoder convs on row pairs with 16-channel blocks; the bottleneck's height may be odd.
        assert laid_out.info.graph == SHIPPED_NOTES[block]
        for shape in ((1, 3, 61, 97), (2, 3, 50, 70), (1, 3, 32, 33)):  # odd sizes, a batch, the minimum side
            x = rng.uniform(size=shape).astype(np.float32)
            np.testing.assert_allclose(laid_out.run(x), plain.run(x), rtol=0, atol=1e-5)


def test_open_backend_lays_out_for_this_cpu() -> None:
    from ftrt.runtime import open_backend

    with open_backend("ort", "res-s", threads=1) as be:
        block = mlas_block_size()
        assert be.info.graph == SHIPPED_NOTES.get(block, "as exported (this CPU has no NCHWc block size ftrt knows)")


def test_runtime_runs_without_the_onnx_package(tmp_path: Path) -> None:
    model = WEIGHTS_DIR / "res-s.onnx"
    script = f"""
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name == "onnx" or name.startswith("onnx.") or name == "torch" or name.startswith("torch."):
            raise ImportError(name + " is blocked in this test")
sys.meta_path.insert(0, _Block())
import numpy as np
from ftrt.runtime.backends.ort import OrtBackend
from ftrt.onnx.passes.channel_norm import channel_norms_as_matmul
be = OrtBackend({str(model)!r}, threads=1).open()
assert be.info.graph.startswith("as exported"), be.info.graph
assert be.run(np.zeros((1, 3, 40, 40), np.float32)).shape == (1, 3, 40, 40)
print("NO-ONNX-OK")
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "NO-ONNX-OK" in proc.stdout


def _block_model(pad_multiple: int | None, stride_first: bool = False) -> onnx.ModelProto:
    """x -> reflect Pad (one row and column) -> a dense block's three grouped 5x5 convs -> Relu.

    As in the block: a = conv1(p); s = conv2y(a) + conv2x(p).

    With ``stride_first`` a stride-2 conv halves the height before the block.
    """
    rng = np.random.default_rng(4)
    c, g = 32, 8
    w = lambda: numpy_helper.from_array(rng.standard_normal((c, g, 5, 5)).astype(np.float32) * 0.1,  # noqa: E731
                                        f"w{len(inits)}")
    inits: list[onnx.TensorProto] = []
    for _ in range(3):
        inits.append(w())
    inits.append(numpy_helper.from_array(rng.standard_normal(c).astype(np.float32), "bias"))
    inits.append(numpy_helper.from_array(np.array([0, 0, 0, 0, 0, 0, 1, 1], np.int64), "pads"))
    nodes = [helper.make_node("Pad", ["x", "pads"], ["p"], mode="reflect")]
    src = "p"
    if stride_first:
        inits.append(numpy_helper.from_array(rng.standard_normal((c, c, 4, 4)).astype(np.float32) * 0.05, "wd"))
        nodes.append(helper.make_node("Conv", ["p", "wd"], ["d"], strides=[2, 2], pads=[1, 1, 1, 1]))
        src = "d"
    conv = lambda i, o, wn, name, b=(): helper.make_node("Conv", [i, wn, *b], [o], name=name,  # noqa: E731
                                                          group=c // g, pads=[2, 2, 2, 2])
    nodes += [conv(src, "a", "w0", "conv1", ("bias",)), conv("a", "b", "w1", "conv2y", ("bias",)),
              conv(src, "c", "w2", "conv2x"), helper.make_node("Add", ["b", "c"], ["s"]),
              helper.make_node("Relu", ["s"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, "h", "w"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c, "h2", "w2"])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    if pad_multiple:
        helper.set_model_props(model, {"pad_multiple": str(pad_multiple)})
    return model


@pytest.mark.parametrize("height", [23, 35])  # 24 and 36 rows after the pad, as the metadata promises
def test_row_pairs_compute_the_same_block(height: int) -> None:
    model = _block_model(pad_multiple=2)
    x = np.random.default_rng(5).standard_normal((1, 32, height, 29)).astype(np.float32)
    ref = _run(model, x)
    changed = row_pair_convs(model, block=16, pad_multiple=2)
    assert changed == ["conv1", "conv2y", "conv2x"]
    onnx.checker.check_model(model, full_check=True)
    ops = [n.op_type for n in model.graph.node]
    # one way into the row-pair layout (shared by conv1 and conv2x), one way out after the sum
    assert ops.count("Transpose") == 2 and ops.count("Conv") == 3
    assert {t.name for t in model.graph.initializer}.isdisjoint({"w0", "w1", "w2"})  # replaced weights dropped
    _close(_run(model, x), ref)


def test_row_pairs_only_where_the_height_is_known_even() -> None:
    assert row_pair_convs(_block_model(pad_multiple=None), 16, pad_multiple=0) == []
    halved = _block_model(pad_multiple=2, stride_first=True)  # even before the stride-2 conv, unknown after
    assert height_multiples(halved, 2) == {"p": 2}
    assert row_pair_convs(halved, 16, pad_multiple=2) == []
    assert height_multiples(_block_model(4, stride_first=True), 4)["s"] == 2
    assert row_pair_convs(_block_model(pad_multiple=2), block=8, pad_multiple=2) == []  # AVX2: groups already fit


def test_row_pair_weight_reads_the_right_rows() -> None:
    w = np.arange(5, dtype=np.float32).reshape(1, 1, 5, 1) + 1  # one 1-channel group, taps 1..5 for dy -2..2
    rp = row_pair_weight(w, groups=1)[:, :, :, 0]  # (out phase, in phase, pair row -1/0/+1)
    # even output row 2i reads rows 2i-2 .. 2i+2: pairs i-1 (both phases), i (both), i+1 (even row)
    np.testing.assert_array_equal(rp[0], [[1, 3, 5], [2, 4, 0]])
    np.testing.assert_array_equal(rp[1], [[0, 2, 4], [1, 3, 5]])


def _upsample_model(mode: str = "nearest", second_reader: bool = False) -> onnx.ModelProto:
    """x -> nearest 2x Resize -> 3x3 Conv (the restorer decoder's upsampling), optionally a second reader."""
    rng = np.random.default_rng(6)
    inits = [numpy_helper.from_array(rng.standard_normal((16, 24, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal(16).astype(np.float32), "b"),
             numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")]
    nodes = [helper.make_node("Resize", ["x", "", "scales"], ["u"], mode=mode,
                              coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
             helper.make_node("Conv", ["u", "w", "b"], ["y"], name="up", pads=[1, 1, 1, 1])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, "h2", "w2"])]
    if second_reader:
        nodes.append(helper.make_node("Relu", ["u"], ["r"]))
        outputs.append(helper.make_tensor_value_info("r", TensorProto.FLOAT, [1, 24, "h2", "w2"]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 24, "h", "w"])],
                              outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_upsampling_conv_runs_at_low_resolution_with_the_same_output() -> None:
    model = _upsample_model()
    x = np.random.default_rng(7).standard_normal((1, 24, 7, 10)).astype(np.float32)
    ref = _run(model, x)
    assert subpixel_upsampling(model) == ["up"]
    onnx.checker.check_model(model, full_check=True)
    assert sorted(n.op_type for n in model.graph.node) == ["Concat", "Conv", "Conv", "Conv", "Conv", "DepthToSpace"]
    assert {t.name for t in model.graph.initializer}.isdisjoint({"w", "scales"})
    _close(_run(model, x), ref)


def test_upsampling_left_alone_unless_it_is_nearest_and_read_once() -> None:
    for model in (_upsample_model(mode="linear"), _upsample_model(second_reader=True)):
        before = model.SerializeToString()
        assert subpixel_upsampling(model) == [] and model.SerializeToString() == before


def test_phase_weights_cover_every_tap_once() -> None:
    w = np.random.default_rng(8).standard_normal((2, 3, 3, 3)).astype(np.float32)
    phases = phase_weights(w)
    assert sorted(phases) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    for p in phases.values():
        assert p.shape == (2, 3, 2, 2)
        np.testing.assert_allclose(p.sum(axis=(2, 3)), w.sum(axis=(2, 3)), rtol=1e-5)
    np.testing.assert_allclose(phases[0, 0][:, :, 0, 0], w[:, :, 0, 0])  # top-left tap alone on the corner pixel


def _layer_norm_model(opset: int = 17, mean_read_outside: bool = False, axes: tuple[int, ...] = (1,)) -> onnx.ModelProto:
    """x -> LayerNorm over the channels as ftrt's restorers export it -> gamma, beta -> 1x1 Conv.

    ``mean_read_outside`` adds a second graph output reading the per-pixel mean.
    """
    rng = np.random.default_rng(9)
    c = 24
    const = lambda name, v: numpy_helper.from_array(np.asarray(v, np.float32), name)  # noqa: E731
    inits = [const("eps", 1e-6), const("one", 1.0), const("gamma", rng.uniform(0.5, 2, (1, c, 1, 1))),
             const("beta", rng.standard_normal((1, c, 1, 1))), const("w", rng.standard_normal((8, c, 1, 1))),
             const("two", np.ones((1, 1, 1, 1)) * 2)]
    if opset >= 18:
        inits.append(numpy_helper.from_array(np.array(axes, np.int64), "axes"))
        mean = lambda i, o: helper.make_node("ReduceMean", [i, "axes"], [o])  # noqa: E731
    else:
        mean = lambda i, o: helper.make_node("ReduceMean", [i], [o], axes=list(axes))  # noqa: E731
    nodes = [mean("x", "mu"), helper.make_node("Sub", ["x", "mu"], ["xc"]), helper.make_node("Pow", ["xc", "two"], ["sq"]),
             mean("sq", "var"), helper.make_node("Add", ["var", "eps"], ["ve"]), helper.make_node("Sqrt", ["ve"], ["sd"]),
             helper.make_node("Div", ["one", "sd"], ["r"]), helper.make_node("Mul", ["xc", "r"], ["n"]),
             helper.make_node("Mul", ["n", "gamma"], ["g"]), helper.make_node("Add", ["g", "beta"], ["a"]),
             helper.make_node("Conv", ["a", "w"], ["y"])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 8, "h", "w"])]
    if mean_read_outside:
        outputs.append(helper.make_tensor_value_info("mu", TensorProto.FLOAT, ["n", 1, "h", "w"]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", c, "h", "w"])],
                              outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@pytest.mark.parametrize("opset", [17, 18])  # axes as an attribute, then as an input
def test_channel_norm_means_as_matmul_give_the_same_output(opset: int) -> None:
    model = _layer_norm_model(opset)
    rng = np.random.default_rng(10)
    xs = [rng.standard_normal(s).astype(np.float32) * 3 + 1 for s in ((1, 24, 13, 17), (2, 24, 8, 5))]
    refs = [_run(model, x) for x in xs]
    assert channel_norms_as_matmul(model) == ["mu"]
    onnx.checker.check_model(model, full_check=True)
    ops = [n.op_type for n in model.graph.node]
    assert "ReduceMean" not in ops and ops.count("MatMul") == 2
    assert ops.count("Reshape") == 2  # onto the (N, C, H*W) view once, back once before gamma
    assert "axes" not in {t.name for t in model.graph.initializer}  # opset 18's axes input went with its means
    for x, ref in zip(xs, refs):
        _close(_run(model, x), ref)


def test_channel_norm_left_alone_when_its_mean_is_read_elsewhere_or_it_is_not_over_channels() -> None:
    for model in (_layer_norm_model(mean_read_outside=True), _layer_norm_model(axes=(2, 3)),
                  _layer_norm_model(18, axes=(1, 2))):
        before = model.SerializeToString()
        assert channel_norms_as_matmul(model) == [] and model.SerializeToString() == before


def _head_model(cout: int) -> onnx.ModelProto:
    """x -> reflect Pad (one row and column, to the multiple of 4 the metadata promises) -> 16-to-``cout`` 5x5 Conv."""
    rng = np.random.default_rng(11)
    inits = [numpy_helper.from_array(rng.standard_normal((cout, 16, 5, 5)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal(cout).astype(np.float32), "b"),
             numpy_helper.from_array(np.array([0, 0, 0, 0, 0, 0, 1, 1], np.int64), "pads")]
    nodes = [helper.make_node("Pad", ["x", "pads"], ["p"], mode="reflect"),
             helper.make_node("Conv", ["p", "w", "b"], ["y"], name="head", pads=[2, 2, 2, 2])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 16, "h", "w"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", cout, "h2", "w2"])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    helper.set_model_props(model, {"pad_multiple": "4"})
    return model


@pytest.mark.parametrize("block,rows", [(16, 4), (8, 2)])  # 3 channels x 4 rows fill 12 of 16; x 2 rows 6 of 8
def test_narrow_output_conv_on_several_rows_gives_the_same_output(block: int, rows: int) -> None:
    model = _head_model(3)
    rng = np.random.default_rng(12)
    xs = [rng.standard_normal(s).astype(np.float32) for s in ((1, 16, 23, 30), (2, 16, 35, 9))]
    refs = [_run(model, x) for x in xs]
    assert row_phase_convs(model, block, pad_multiple=4) == ["head"]
    onnx.checker.check_model(model, full_check=True)
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    assert next(a.ints for a in conv.attribute if a.name == "strides") == [rows, 1]
    assert {t.name for t in model.graph.initializer}.isdisjoint({"w", "b"})
    for x, ref in zip(xs, refs):
        _close(_run(model, x), ref)


def test_narrow_output_conv_left_alone_without_a_known_height_or_with_a_full_block() -> None:
    assert row_phase_convs(_head_model(16), 16, pad_multiple=4) == []  # already fills the block
    assert row_phase_convs(_head_model(3), 16, pad_multiple=0) == []  # no in-graph pad promise: height unknown


def test_row_phase_weight_shifts_the_kernel_one_row_per_phase() -> None:
    w = np.arange(1, 4, dtype=np.float32).reshape(1, 1, 3, 1)  # taps 1, 2, 3 for dy -1..1
    rp = row_phase_weight(w, 2)[:, 0, :, 0]  # (row phase, kernel row over rows -1..2)
    np.testing.assert_array_equal(rp, [[1, 2, 3, 0], [0, 1, 2, 3]])


def test_channel_norm_left_alone_when_shape_inference_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(model: onnx.ModelProto) -> onnx.ModelProto:
        raise onnx.shape_inference.InferenceError("no shapes for this graph")

    monkeypatch.setattr(onnx.shape_inference, "infer_shapes", refuse)
    model = _layer_norm_model()
    assert channel_norms_as_matmul(model) == []
