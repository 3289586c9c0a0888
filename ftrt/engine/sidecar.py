"""The JSON sidecar beside every engine, and the guard that refuses an engine built for another host.

A TensorRT plan only runs on the TensorRT version and GPU it was built for;
loading it elsewhere fails deep inside libnvinfer, or worse. The sidecar
(``model.engine.json``) records what the engine needs so the runtime can check
before deserialising, and say which command rebuilds it. The plan file itself
is left untouched, so other TensorRT tools still read it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftrt.engine.profiles import EngineProfile
from ftrt.io import write_json_atomic

PLAN_MAGIC = b"ftrt"  # TensorRT's own plan magic (a coincidence of names)
SIDECAR_VERSION = 1


class EngineMismatch(RuntimeError):
    """The engine was built for another TensorRT version or GPU, or its file changed since."""


def sidecar_path(engine: str | Path) -> Path:
    return Path(f"{engine}.json")


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def plan_header(path: str | Path) -> dict[str, Any]:
    """The plan's magic and the 4 bytes at 24..27 (where TensorRT stores its version), without TensorRT."""
    with open(path, "rb") as fh:
        head = fh.read(32)
    return {"magic_ok": head[:4] == PLAN_MAGIC, "version_bytes": head[24:28].hex() if len(head) >= 28 else ""}


@dataclass
class HostInfo:
    trt_version: str | None
    gpu_name: str | None
    compute_capability: str | None
    cuda_driver: str | None = None


def build_sidecar(*, engine: Path, onnx_path: Path, onnx_metadata: dict[str, str], host: HostInfo,
                  profiles: list[EngineProfile], precision: dict[str, Any], flags: dict[str, Any],
                  ftrt_version: str, io: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "sidecar_version": SIDECAR_VERSION,
        "engine_sha256": sha256_file(engine),
        "plan_header": plan_header(engine),
        "tensorrt_version": host.trt_version,
        "gpu": {"name": host.gpu_name, "compute_capability": host.compute_capability,
                "cuda_driver": host.cuda_driver},
        "profiles": [p.as_dict() for p in profiles],
        "precision": precision,
        "onnx": {"path": str(onnx_path), "sha256": sha256_file(onnx_path), "metadata": onnx_metadata},
        "ftrt_version": ftrt_version,
        "build_flags": flags,
        "io": io,
    }


def write_sidecar(engine: str | Path, data: dict[str, Any]) -> Path:
    return write_json_atomic(sidecar_path(engine), data)


def read_sidecar(engine: str | Path) -> dict[str, Any]:
    p = sidecar_path(engine)
    if not p.is_file():
        raise EngineMismatch(f"{engine}: no sidecar {p.name} beside it; rebuild with `ftrt build-engine`, which "
                             "records the TensorRT version, GPU and profiles the engine needs")
    try:
        data = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EngineMismatch(f"{p}: unreadable sidecar ({str(exc).splitlines()[0][:120]})") from None
    except OSError as exc:
        raise EngineMismatch(f"{p}: cannot read the sidecar ({exc.strerror})") from None
    _check_layout(data, p)
    if data.get("sidecar_version") != SIDECAR_VERSION:
        raise EngineMismatch(f"{p}: sidecar version {data.get('sidecar_version')} is not {SIDECAR_VERSION}")
    return data


# The sidecar's fields and the JSON type each must have where present: an edited or foreign file of another
# shape is refused with its name instead of failing as an AttributeError deep in a check.
_FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "onnx": dict, "gpu": dict, "profiles": list, "tensorrt_version": str, "engine_sha256": str,
    "sidecar_version": int, "precision": dict, "build_flags": dict, "io": list, "plan_header": dict,
}


def _check_layout(data: Any, p: Path) -> None:
    if not isinstance(data, dict):
        raise EngineMismatch(f"{p}: sidecar is not a JSON object; rebuild with `ftrt build-engine`")
    for key, typ in _FIELD_TYPES.items():
        if key in data and data[key] is not None and not isinstance(data[key], typ):
            raise EngineMismatch(f"{p}: sidecar field {key!r} has the wrong type; rebuild with `ftrt build-engine`")
    profiles = data.get("profiles") or []
    for prof in profiles:
        ok = isinstance(prof, dict) and all(
            isinstance(prof.get(k), list) and len(prof[k]) == 3
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in prof[k])
            for k in ("min", "opt", "max"))
        if not ok:
            raise EngineMismatch(f"{p}: sidecar profile {str(prof)[:80]} is malformed (min/opt/max: three "
                                 "positive integers each)")


def rebuild_command(engine: str | Path, data: dict[str, Any]) -> str:
    onnx_path = data.get("onnx", {}).get("path", "MODEL.onnx")
    profiles = " ".join(f"--profile {EngineProfile.from_dict(p)}" for p in data.get("profiles", []))
    return f"ftrt build-engine {onnx_path} -o {engine} {profiles}".strip()


def check_compatible(engine: str | Path, data: dict[str, Any], host: HostInfo, verify_hash: bool = True) -> None:
    """Raise :class:`EngineMismatch` (with the rebuild command) unless ``engine`` can run on ``host``."""
    problems = []
    if data.get("tensorrt_version") and host.trt_version and data["tensorrt_version"] != host.trt_version:
        problems.append(f"built with TensorRT {data['tensorrt_version']}, this host has {host.trt_version}")
    gpu = data.get("gpu", {})
    if gpu.get("compute_capability") and host.compute_capability and gpu["compute_capability"] != host.compute_capability:
        problems.append(f"built for compute capability {gpu['compute_capability']} ({gpu.get('name')}), this GPU is "
                        f"{host.compute_capability} ({host.gpu_name})")
    elif gpu.get("name") and host.gpu_name and gpu["name"] != host.gpu_name:
        problems.append(f"built on {gpu['name']}, this GPU is {host.gpu_name}")
    if verify_hash and data.get("engine_sha256") and sha256_file(engine) != data["engine_sha256"]:
        # Deserialising runs native code from the file: refuse one that changed since it was built.
        problems.append("the engine file changed since it was built (sha256 differs from the sidecar)")
    if not plan_header(engine)["magic_ok"]:
        problems.append("the file is not a TensorRT plan")
    if problems:
        raise EngineMismatch(f"{engine}: " + "; ".join(problems) + f". Rebuild it here: {rebuild_command(engine, data)}")
