"""``ftrt build-engine``: a TensorRT plan from an ftrt ONNX, for TensorRT 8.6, 10.x and 11.x.

Precision comes from the ONNX (``precision`` metadata written by ``ftrt
convert --fp16`` and ``ftrt calibrate``). What differs by version:

* 11.x: networks are always strongly typed; the FP16/INT8 builder flags and
  calibrators are gone, so ``--fp16`` and ``--calib-cache`` are refused with the
  command that puts the precision into the ONNX instead.
* 10.x: a mixed-FP16 or Q/DQ ONNX is built strongly typed (the graph's types
  are obeyed); an FP32 ONNX may still use the legacy ``--fp16`` flag and an
  INT8 calibration cache (JetPack 6.1/6.2).
* 8.6 (JetPack 6.0): explicit batch flag; weak typing only, so the graph's
  precision is enabled with the FP16/INT8 flags; calibration cache as on 10.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftrt import __version__
from ftrt.engine.host import host_info, trt_module, version_tuple
from ftrt.engine.profiles import EngineProfile, input_shape, profiles_for_model
from ftrt.engine.sidecar import build_sidecar, write_sidecar
from ftrt.io import atomic_write


class BuildError(RuntimeError):
    """The ONNX did not parse, an option does not apply to this TensorRT, or the build failed."""


@dataclass
class BuildOptions:
    profiles: list[EngineProfile] = field(default_factory=list)
    workspace_gib: float | None = None
    timing_cache: Path | None = None
    calib_cache: Path | None = None
    builder_opt_level: int | None = None
    dla_core: int | None = None
    fp16: bool = False


@dataclass(frozen=True)
class BuildPlan:
    """The version-dependent decisions, separated from the TensorRT calls so they are testable anywhere."""

    explicit_batch_flag: bool
    strongly_typed: bool
    fp16_flag: bool
    int8_flag: bool
    use_calib_cache: bool


def plan_build(trt_version: str, onnx_precision: str, opts: BuildOptions) -> BuildPlan:
    major, _ = version_tuple(trt_version)
    in_graph = onnx_precision in ("fp16-mixed", "int8-qdq")
    if major >= 11:
        if opts.fp16:
            raise BuildError("--fp16 was removed in TensorRT 11 (strong typing only): make a mixed-FP16 ONNX with "
                             "`ftrt convert MODEL.onnx --fp16 -o MODEL.fp16.onnx` and build that")
        if opts.calib_cache:
            raise BuildError("INT8 calibration caches were removed in TensorRT 11: make a Q/DQ ONNX with "
                             "`ftrt calibrate MODEL.onnx --images DIR -o MODEL.int8.onnx` and build that")
        return BuildPlan(False, True, False, False, False)
    if in_graph and (opts.fp16 or opts.calib_cache):
        raise BuildError(f"the ONNX already carries its precision ({onnx_precision}); --fp16 and --calib-cache "
                         "apply to an FP32 ONNX only")
    if major >= 10:
        # Strong typing makes TensorRT obey the graph's FP16 casts and Q/DQ exactly, as TensorRT 11 will.
        return BuildPlan(False, in_graph, opts.fp16, bool(opts.calib_cache), bool(opts.calib_cache))
    if major == 8 and version_tuple(trt_version)[1] >= 6:
        return BuildPlan(True, False, opts.fp16 or onnx_precision == "fp16-mixed",
                         bool(opts.calib_cache) or onnx_precision == "int8-qdq", bool(opts.calib_cache))
    raise BuildError(f"TensorRT {trt_version} is not supported: ftrt builds with 8.6, 10.x and 11.x")


def _onnx_metadata(path: Path) -> dict[str, str]:
    try:
        import onnx

        return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    except ImportError:
        import onnxruntime as ort

        return dict(ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
                    .get_modelmeta().custom_metadata_map)


def _cache_calibrator(trt: Any, cache: bytes) -> Any:
    """An entropy calibrator that only replays a cache (ftrt computed the ranges from real images)."""

    class CacheCalibrator(trt.IInt8EntropyCalibrator2):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names: list[str]) -> None:
            return None

        def read_calibration_cache(self) -> bytes:
            return cache

        def write_calibration_cache(self, data: Any) -> None:
            return None

    return CacheCalibrator()


def build_engine(onnx_path: str | Path, out: str | Path, opts: BuildOptions,
                 log: Callable[[str], None] = print) -> dict[str, Any]:
    """Build, write the plan and its sidecar atomically; return the sidecar."""
    trt_module()  # one clear line when TensorRT is missing
    import tensorrt as trt  # typed through tensorrt-stubs

    onnx_path, out = Path(onnx_path), Path(out)
    meta = _onnx_metadata(onnx_path)
    profiles = opts.profiles or profiles_for_model(meta)
    precision = meta.get("precision", "fp32")
    plan = plan_build(trt.__version__, precision, opts)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if plan.explicit_batch_flag:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    if plan.strongly_typed and version_tuple(trt.__version__)[0] < 11:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BuildError(f"{onnx_path}: TensorRT's ONNX parser failed: {errors}")
    config = builder.create_builder_config()
    if opts.workspace_gib:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(opts.workspace_gib * (1 << 30)))
    if opts.builder_opt_level is not None:
        config.builder_optimization_level = opts.builder_opt_level
    input_name = network.get_input(0).name
    inputs = [network.get_input(i) for i in range(network.num_inputs)]
    for p in profiles:
        prof = builder.create_optimization_profile()
        # Every input follows the first one's (N, H, W): one input for a restorer, four for a denoiser.
        for t in inputs:
            dims = [t.shape[i] for i in range(len(t.shape))]
            lo, opt, hi = (trt.Dims(list(input_shape(dims, *d))) for d in (p.min, p.opt, p.max))
            prof.set_shape(t.name, lo, opt, hi)
        config.add_optimization_profile(prof)
    if plan.fp16_flag:
        config.set_flag(trt.BuilderFlag.FP16)
    if plan.int8_flag:
        config.set_flag(trt.BuilderFlag.INT8)
    if plan.use_calib_cache:
        from ftrt.engine.calib_cache import read_cache, retag, version_code

        assert opts.calib_cache is not None
        read_cache(opts.calib_cache)  # a clear error for a file that is not a cache
        tmp_cache = out.with_suffix(".calib.tmp")
        retag(opts.calib_cache, version_code(trt.__version__), tmp_cache)
        config.int8_calibrator = _cache_calibrator(trt, tmp_cache.read_bytes())
        tmp_cache.unlink()
        # Dynamic shapes need a calibration profile; with a cache it only has to be valid.
        opt_dims = trt.Dims(list(profiles[0].nchw()[1]))
        calib_profile = builder.create_optimization_profile()
        calib_profile.set_shape(input_name, opt_dims, opt_dims, opt_dims)
        config.set_calibration_profile(calib_profile)
    if opts.dla_core is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = opts.dla_core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    cache_bytes = opts.timing_cache.read_bytes() if opts.timing_cache and opts.timing_cache.is_file() else b""
    timing_cache = config.create_timing_cache(cache_bytes)
    config.set_timing_cache(timing_cache, False)
    log(f"building {out.name} with TensorRT {trt.__version__}: {len(profiles)} profile(s), ONNX precision "
        f"{precision}{', strongly typed' if plan.strongly_typed else ''}")
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BuildError(f"TensorRT could not build {onnx_path} (see the messages above)")
    atomic_write(out, lambda tmp: Path(tmp).write_bytes(bytes(serialized)))
    if opts.timing_cache:
        cache_out = bytes(config.get_timing_cache().serialize())
        atomic_write(opts.timing_cache, lambda tmp: Path(tmp).write_bytes(cache_out))
    io = [{"name": t.name, "dtype": str(t.dtype), "shape": [t.shape[i] for i in range(len(t.shape))], "mode": mode}
          for mode, tensors in (("input", [network.get_input(i) for i in range(network.num_inputs)]),
                                ("output", [network.get_output(i) for i in range(network.num_outputs)]))
          for t in tensors]
    flags_used = {"workspace_gib": opts.workspace_gib, "builder_opt_level": opts.builder_opt_level,
                  "dla_core": opts.dla_core, "fp16_flag": plan.fp16_flag, "int8_flag": plan.int8_flag,
                  "calib_cache": str(opts.calib_cache) if opts.calib_cache else None,
                  "strongly_typed": plan.strongly_typed, "timing_cache": str(opts.timing_cache or "")}
    precision_summary = {"onnx": precision, "fp16_flag": plan.fp16_flag, "int8_flag": plan.int8_flag}
    data = build_sidecar(engine=out, onnx_path=onnx_path, onnx_metadata=meta, host=host_info(),
                         profiles=profiles, precision=precision_summary, flags=flags_used, ftrt_version=__version__,
                         io=io)
    write_sidecar(out, data)
    return data


def engine_layers(engine_path: str | Path) -> Any:
    """Per-layer information (precisions, tactics) as TensorRT's engine inspector reports it, as JSON."""
    import json

    trt_module()
    import tensorrt as trt

    runtime = trt.Runtime(trt.Logger(trt.Logger.ERROR))
    engine = runtime.deserialize_cuda_engine(Path(engine_path).read_bytes())
    if engine is None:
        raise BuildError(f"{engine_path}: TensorRT could not deserialise it")
    inspector = engine.create_engine_inspector()
    return json.loads(inspector.get_engine_information(trt.LayerInformationFormat.JSON))


__all__ = ["BuildError", "BuildOptions", "BuildPlan", "build_engine", "engine_layers", "plan_build"]
