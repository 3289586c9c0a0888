"""``ftrt info``: what a model file is, without running it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _dim(d: Any) -> int | str:
    if d.HasField("dim_value"):
        return int(d.dim_value)
    return d.dim_param or "?"


def onnx_info(path: Path) -> dict[str, Any]:
    try:
        import onnx
    except ImportError:
        return _onnx_info_via_ort(path)
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: empty file, not an ONNX model")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise ValueError(f"{path}: not a valid ONNX model ({type(exc).__name__}: truncated or damaged)") from None
    if not proto.graph.node and not proto.graph.output:
        raise ValueError(f"{path}: ONNX file without a graph")
    params = sum(int(_numel(t.dims)) for t in proto.graph.initializer)
    init_names = {t.name for t in proto.graph.initializer}

    def spec(v: Any) -> dict[str, Any]:
        tt = v.type.tensor_type
        return {"name": v.name, "dtype": onnx.TensorProto.DataType.Name(tt.elem_type).lower(),
                "shape": [_dim(d) for d in tt.shape.dim]}

    return {
        "file": str(path),
        "format": "onnx",
        "size_bytes": path.stat().st_size,
        "opset": {(o.domain or "ai.onnx"): o.version for o in proto.opset_import},
        "producer": f"{proto.producer_name} {proto.producer_version}".strip(),
        "inputs": [spec(v) for v in proto.graph.input if v.name not in init_names],
        "outputs": [spec(v) for v in proto.graph.output],
        "parameters": params,
        "nodes": len(proto.graph.node),
        "metadata": {p.key: p.value for p in proto.metadata_props},
    }


def _numel(dims: Any) -> int:
    n = 1
    for d in dims:
        n *= int(d)
    return n


def _onnx_info_via_ort(path: Path) -> dict[str, Any]:
    import onnxruntime as ort

    try:
        s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT's own exception types
        raise ValueError(f"{path}: not a loadable ONNX model ({str(exc).splitlines()[0][:160]})") from None
    return {
        "file": str(path), "format": "onnx", "size_bytes": path.stat().st_size,
        "inputs": [{"name": i.name, "dtype": i.type, "shape": list(i.shape)} for i in s.get_inputs()],
        "outputs": [{"name": o.name, "dtype": o.type, "shape": list(o.shape)} for o in s.get_outputs()],
        "metadata": dict(s.get_modelmeta().custom_metadata_map),
    }


def safetensors_info(path: Path) -> dict[str, Any]:
    """Reads the safetensors header directly (checked: ftrt.io.weights): no torch needed to describe it."""
    from ftrt.io.weights import ftrt_metadata, read_safetensors_header

    header, raw_meta = read_safetensors_header(path)
    meta = ftrt_metadata(raw_meta, path)
    params = sum(_numel(v["shape"]) for v in header.values())
    card_path = path.with_suffix(".json")
    card: Any = None
    if card_path.exists():
        try:
            card = json.loads(card_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            card = f"unreadable model card {card_path.name} ({type(exc).__name__})"
    return {"file": str(path), "format": "safetensors", "size_bytes": path.stat().st_size,
            "preset": meta.get("preset"), "parameters": params, "tensors": len(header), "metadata": meta,
            "model_card": card}


def engine_info(path: Path) -> dict[str, Any]:
    """A TensorRT engine's sidecar (no TensorRT needed) and, where TensorRT runs, its layers' precisions."""
    from ftrt.engine.sidecar import EngineMismatch, plan_header, read_sidecar

    out: dict[str, Any] = {"file": str(path), "format": "tensorrt-engine", "size_bytes": path.stat().st_size,
                           "plan_header": plan_header(path)}
    try:
        out["sidecar"] = read_sidecar(path)
        out["metadata"] = out["sidecar"].get("onnx", {}).get("metadata", {})
    except EngineMismatch as exc:
        out["sidecar_error"] = str(exc)
    try:
        from collections import Counter

        from ftrt.engine.build import engine_layers

        layers = engine_layers(path).get("Layers", [])
        precisions = Counter(str(layer.get("Outputs", [{}])[0].get("Format/Datatype", "?")).split(" ")[-1]
                             for layer in layers if isinstance(layer, dict))
        out["layers"] = {"count": len(layers), "output_precisions": dict(precisions)}
    except Exception as exc:  # noqa: BLE001 - no TensorRT/GPU here, or an engine for another host
        out["layers"] = f"not inspected: {str(exc).splitlines()[0]}"
    return out


def describe(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file")
    if p.suffix == ".onnx":
        return onnx_info(p)
    if p.suffix == ".safetensors":
        return safetensors_info(p)
    if p.suffix in (".engine", ".plan"):
        return engine_info(p)
    raise ValueError(f"{p}: unknown model format (expected .onnx, .safetensors, .engine or .plan)")


def format_info(info: dict[str, Any]) -> str:
    lines = [f"{info['file']}  ({info['format']}, {info['size_bytes'] / 1e6:.2f} MB)"]
    if info["format"] == "tensorrt-engine":
        sc = info.get("sidecar")
        if sc is None:
            lines.append(f"sidecar: {info.get('sidecar_error')}")
        else:
            gpu = sc.get("gpu", {})
            lines.append(f"TensorRT {sc.get('tensorrt_version')}; GPU {gpu.get('name')} (compute "
                         f"{gpu.get('compute_capability')}); precision {sc.get('precision')}")
            lines += [f"profile {i}: {p['min']} / {p['opt']} / {p['max']} (N, H, W)"
                      for i, p in enumerate(sc.get("profiles", []))]
            lines += [f"{t['mode']:<7} {t['name']}: {t['dtype']} {t['shape']}" for t in sc.get("io", [])]
        lines.append(f"layers: {info.get('layers')}")
        return "\n".join(lines)
    if info["format"] == "onnx":
        if "opset" in info:
            lines.append(f"opset: {', '.join(f'{k} {v}' for k, v in info['opset'].items())}; "
                         f"{info.get('nodes', '?')} nodes; {info.get('parameters', 0):,} parameters")
        for kind in ("inputs", "outputs"):
            for t in info[kind]:
                lines.append(f"{kind[:-1]:<7} {t['name']}: {t['dtype']} {t['shape']}")
    else:
        lines.append(f"preset: {info['preset']}; {info['parameters']:,} parameters in {info['tensors']} tensors")
        card = info.get("model_card")
        if card:
            tr = card.get("training", {})
            lines.append(f"model card: {card.get('id')}; {tr.get('steps')} steps, {tr.get('train_seconds')} s")
    for k, v in sorted(info.get("metadata", {}).items()):
        if isinstance(v, (dict, list)):
            v = json.dumps(v)
        lines.append(f"  {k}: {v}")
    return "\n".join(lines)
