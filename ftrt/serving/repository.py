"""``ftrt triton export``: a Triton Inference Server model repository from ftrt's models, written offline.

Layout (one version per model, the model card beside each file)::

    REPO/<name>/config.pbtxt          raw networks: onnxruntime_onnx (ONNX) or tensorrt_plan (engines)
    REPO/<name>/1/model.onnx|.plan    dynamic H x W as -1; engines get the dims their sidecar's profiles allow
    REPO/<name>/1/card.json
    REPO/fundus_restore/config.pbtxt  Python backend: ftrt's whole pipeline on raw photographs (UINT8 HxWx3,
    REPO/fundus_restore/1/model.py    any size) -> the restored photograph and the JSON record, the network
    REPO/fundus_restore/1/<files>     run in-process on ONNX Runtime (any Triton with the Python backend)

Nothing here imports Triton: the configs are protobuf text written from the models' own I/O (read with
``onnx``, or from an engine's sidecar), and ``check_repository`` reads them back against those models.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# ONNX tensor element types -> Triton data types.
ONNX_TO_TRITON = {1: "TYPE_FP32", 10: "TYPE_FP16", 2: "TYPE_UINT8", 3: "TYPE_INT8", 6: "TYPE_INT32",
                  7: "TYPE_INT64", 11: "TYPE_FP64", 9: "TYPE_BOOL", 16: "TYPE_BF16"}
TRT_TO_TRITON = {"DataType.FLOAT": "TYPE_FP32", "DataType.HALF": "TYPE_FP16", "DataType.INT8": "TYPE_INT8",
                 "DataType.INT32": "TYPE_INT32", "DataType.UINT8": "TYPE_UINT8", "DataType.BOOL": "TYPE_BOOL",
                 "DataType.BF16": "TYPE_BF16", "DataType.INT64": "TYPE_INT64"}
PIPELINE_MODEL = "fundus_restore"
MAX_SIDE = 8192  # the Python model refuses larger photographs with a v2 error (the pixel limit of ftrt.io)


@dataclass
class Tensor:
    name: str
    data_type: str
    dims: list[int]  # without the batch dimension when the model batches


@dataclass
class ModelEntry:
    name: str
    platform: str  # onnxruntime_onnx | tensorrt_plan | python
    inputs: list[Tensor]
    outputs: list[Tensor]
    max_batch_size: int
    source: Path | None  # the file copied into the version folder
    card: dict[str, Any]


class RepositoryError(ValueError):
    """A model that cannot be served as asked, or a repository whose configs do not match its models."""


def _card_for(path: Path, metadata: dict[str, str]) -> dict[str, Any]:
    from ftrt.runtime.models import WEIGHTS_DIR

    card_path = WEIGHTS_DIR / f"{path.stem}.json"
    card: dict[str, Any] = {}
    if card_path.is_file():
        try:
            card = json.loads(card_path.read_text())
        except (OSError, json.JSONDecodeError):
            card = {}
    return {"file": path.name, "metadata": metadata, **({"card": card} if card else {})}


def onnx_entry(name: str, path: Path, max_batch: int) -> ModelEntry:
    """The entry of an ONNX model: its I/O from the graph, dynamic dims as -1, the batch dim folded into
    ``max_batch_size`` when the model's first dim is dynamic."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's errors
        raise RepositoryError(f"{path}: not a valid ONNX model ({type(exc).__name__})") from None
    inits = {t.name for t in model.graph.initializer}

    def tensors(values: Any, batch: bool) -> list[Tensor]:
        out = []
        for v in values:
            if v.name in inits:
                continue
            tt = v.type.tensor_type
            if tt.elem_type not in ONNX_TO_TRITON:
                raise RepositoryError(f"{path}: tensor {v.name} has an element type Triton cannot carry")
            dims = [int(d.dim_value) if d.HasField("dim_value") else -1 for d in tt.shape.dim]
            out.append(Tensor(v.name, ONNX_TO_TRITON[tt.elem_type], dims[1:] if batch else dims))
        return out

    first = model.graph.input[0].type.tensor_type.shape.dim
    batch = max_batch > 0 and len(first) > 0 and not first[0].HasField("dim_value")
    meta = {p.key: p.value for p in model.metadata_props}
    return ModelEntry(name, "onnxruntime_onnx", tensors(model.graph.input, batch), tensors(model.graph.output, batch),
                      max_batch if batch else 0, path, _card_for(path, meta))


def engine_entry(name: str, path: Path, max_batch: int) -> ModelEntry:
    """The entry of a TensorRT engine from its sidecar (no TensorRT needed): I/O names and types as built,
    dims -1 where a profile lets them vary, the batch bounded by the profiles' largest N."""
    from ftrt.engine.sidecar import read_sidecar

    side = read_sidecar(path)
    profiles = side.get("profiles") or []
    n_max = max((int(p["max"][0]) for p in profiles), default=1)
    batch = max_batch > 0 and n_max > 1
    out: dict[str, list[Tensor]] = {"input": [], "output": []}
    for t in side.get("io") or []:
        dtype = TRT_TO_TRITON.get(str(t.get("dtype")))
        if dtype is None:
            raise RepositoryError(f"{path}: tensor {t.get('name')} has type {t.get('dtype')}, unknown to Triton")
        dims = [int(d) for d in t.get("shape", [])]
        out[str(t.get("mode"))].append(Tensor(str(t["name"]), dtype, dims[1:] if batch else dims))
    if not out["input"] or not out["output"]:
        raise RepositoryError(f"{path}: its sidecar records no inputs/outputs; rebuild with `ftrt build-engine`")
    meta = (side.get("onnx") or {}).get("metadata") or {}
    return ModelEntry(name, "tensorrt_plan", out["input"], out["output"], min(max_batch, n_max) if batch else 0,
                      path, _card_for(path, meta))


def pipeline_entry(restorer: str, gate: str | None) -> ModelEntry:
    """The Python-backend model that runs ftrt's whole pipeline on raw photographs."""
    card = {"restorer": restorer, "gate": gate, "max_side": MAX_SIDE}
    return ModelEntry(PIPELINE_MODEL, "python",
                      [Tensor("IMAGE", "TYPE_UINT8", [-1, -1, 3])],
                      [Tensor("RESTORED", "TYPE_UINT8", [-1, -1, 3]), Tensor("RECORD", "TYPE_STRING", [1])],
                      0, None, card)


NETWORK_MODES = ("inprocess", "bls")
RAW_BACKENDS = ("onnxruntime", "python")


def config_text(e: ModelEntry, instances: int, kind: str, dynamic_batching: bool, raw_backend: str = "onnxruntime") -> str:
    """The entry as Triton's protobuf text (model_config.proto); ``raw_backend`` python: an ONNX network
    served by ftrt's Python model (same I/O) for a Triton without the onnxruntime backend."""

    def block(t: Tensor) -> str:
        return f'  {{\n    name: "{t.name}"\n    data_type: {t.data_type}\n    dims: [ {", ".join(map(str, t.dims))} ]\n  }}'

    lines = [f'name: "{e.name}"']
    python = e.platform == "python" or (e.platform == "onnxruntime_onnx" and raw_backend == "python")
    lines.append('backend: "python"' if python else f'platform: "{e.platform}"')
    lines.append(f"max_batch_size: {e.max_batch_size}")
    lines.append("input [\n" + ",\n".join(block(t) for t in e.inputs) + "\n]")
    lines.append("output [\n" + ",\n".join(block(t) for t in e.outputs) + "\n]")
    lines.append(f"instance_group [\n  {{\n    count: {instances}\n    kind: {kind}\n  }}\n]")
    if dynamic_batching and e.max_batch_size > 0:
        lines.append("dynamic_batching {\n  max_queue_delay_microseconds: 2000\n}")
    return "\n".join(lines) + "\n"


def export_repository(models: list[str], out: str | Path, max_batch: int = 4, instances: int = 1,
                      dynamic_batching: bool = False, gate: str | None = "readability", gpu: bool = False,
                      pipeline: bool = True, network: str = "inprocess",
                      raw_backend: str = "onnxruntime") -> list[ModelEntry]:
    """Write the repository; returns what it holds. ``models``: shipped names, ONNX files or engines (the
    first restorer also backs ``fundus_restore``); ``gate``: the readability classifier served beside them
    and used by the pipeline model (None: no gate). ``network``: fundus_restore runs the networks in-process
    (ONNX Runtime in the Python model) or calls the raw models beside it through BLS (the production layout:
    the network on the server's onnxruntime/TensorRT backend, the first restorer's entry, an engine
    included). ``raw_backend`` python: the raw ONNX networks served by ftrt's Python model instead."""
    if network not in NETWORK_MODES or raw_backend not in RAW_BACKENDS:
        raise RepositoryError(f"network must be one of {NETWORK_MODES}, raw_backend one of {RAW_BACKENDS}")
    from ftrt.runtime.models import resolve_model

    repo = Path(out)
    if repo.exists() and any(repo.iterdir()):
        raise RepositoryError(f"{repo}: exists and is not empty; give a new folder (a repository is written whole)")
    entries: list[ModelEntry] = []
    restorer_onnx: Path | None = None
    restorer_entry: ModelEntry | None = None
    for ref in models:
        p = Path(ref)
        if p.suffix in (".engine", ".plan"):
            entries.append(engine_entry(_model_name(p.stem), p, max_batch))
        else:
            path = resolve_model(ref, "onnx")
            entries.append(onnx_entry(_model_name(path.stem), path, max_batch))
        if restorer_entry is None and entries[-1].card.get("metadata", {}).get("model", "restorer") == "restorer":
            restorer_entry = entries[-1]
            restorer_onnx = path if entries[-1].platform == "onnxruntime_onnx" else None
    gate_path = resolve_model(gate, "onnx") if gate else None
    gate_entry = next((e for e in entries if gate_path is not None and e.source == gate_path), None)
    if gate_path is not None and gate_entry is None:
        gate_entry = onnx_entry(_model_name(gate_path.stem), gate_path, max_batch)
        entries.append(gate_entry)
    settings: dict[str, Any] = {"max_side": MAX_SIDE}
    if pipeline and network == "bls":
        if restorer_entry is None:
            raise RepositoryError("fundus_restore needs a restorer among --model")
        settings["network"] = {"mode": "bls", "restorer": _bls_target(restorer_entry),
                               "gate": _bls_target(gate_entry) if gate_entry is not None else None}
        entries.append(pipeline_entry(restorer_entry.name, gate_entry.name if gate_entry else None))
    elif pipeline:
        if restorer_onnx is None:
            raise RepositoryError("fundus_restore needs an ONNX restorer among --model to run in-process (engines "
                                  "are served raw; --network bls calls them)")
        settings.update(restorer=restorer_onnx.name, gate=gate_path.name if gate_path else None)
        entries.append(pipeline_entry(restorer_onnx.name, gate_path.name if gate_path else None))
    names = [e.name for e in entries]
    if len(set(names)) != len(names):
        raise RepositoryError(f"two models would share a name in the repository: {names}")
    kind = "KIND_GPU" if gpu else "KIND_CPU"
    repo.mkdir(parents=True, exist_ok=True)
    for e in entries:
        version = repo / e.name / "1"
        version.mkdir(parents=True)
        (repo / e.name / "config.pbtxt").write_text(config_text(e, instances, kind, dynamic_batching, raw_backend))
        (version / "card.json").write_text(json.dumps(e.card, indent=2, sort_keys=True) + "\n")
        if e.platform == "onnxruntime_onnx" and e.source is not None:
            shutil.copyfile(e.source, version / "model.onnx")
            if raw_backend == "python":
                _write_python_model(version, {"serve": "onnx"})
        elif e.platform == "tensorrt_plan" and e.source is not None:
            shutil.copyfile(e.source, version / "model.plan")
            shutil.copyfile(e.source.with_name(e.source.name + ".json"), version / "model.plan.json")
        else:
            for f in ([] if network == "bls" else [restorer_onnx, gate_path]):
                if f is not None:
                    shutil.copyfile(f, version / f.name)
            _write_python_model(version, settings)
    return entries


def _bls_target(e: ModelEntry) -> dict[str, Any]:
    """What fundus_restore needs to call a raw model through BLS (ftrt.serving.bls.BlsBackend's arguments)."""
    return {"model_name": e.name, "input_name": e.inputs[0].name, "output_name": e.outputs[0].name,
            "metadata": e.card.get("metadata", {})}


def _model_name(stem: str) -> str:
    """A Triton model name from a file stem: letters, digits, '_' and '-' only."""
    name = "".join(c if c.isalnum() or c in "_-" else "_" for c in stem)
    return name or "model"


def _write_python_model(version: Path, settings: dict[str, Any]) -> None:
    """ftrt's Python model (triton_model.py) and what this copy of it serves (ftrt.json)."""
    (version / "ftrt.json").write_text(json.dumps(settings, indent=2) + "\n")
    shutil.copyfile(Path(__file__).with_name("triton_model.py"), version / "model.py")


def parse_pbtxt(text: str) -> dict[str, Any]:
    """The subset of protobuf text format the repository uses (scalars, messages, lists) as nested dicts;
    a repeated field's values become a list. Raises RepositoryError on anything malformed."""
    import re

    tokens = re.findall(r'"(?:[^"\\]|\\.)*"|[{}\[\]:,]|[^\s{}\[\]:,"]+', text)
    pos = 0

    def value() -> Any:
        nonlocal pos
        tok = tokens[pos]
        pos += 1
        if tok == "{":
            return message("}")
        if tok == "[":
            items = []
            while tokens[pos] != "]":
                items.append(value())
                if tokens[pos] == ",":
                    pos += 1
            pos += 1
            return items
        if tok.startswith('"'):
            return json.loads(tok)
        try:
            return int(tok)
        except ValueError:
            return tok

    def message(end: str | None) -> dict[str, Any]:
        nonlocal pos
        out: dict[str, Any] = {}
        while pos < len(tokens) and tokens[pos] != end:
            key = tokens[pos]
            pos += 1
            if tokens[pos] == ":":
                pos += 1
            v = value()
            if key in out:
                prev = out[key]
                out[key] = (prev if isinstance(prev, list) else [prev]) + (v if isinstance(v, list) else [v])
            else:
                out[key] = v
        if end is not None:
            if pos >= len(tokens):
                raise RepositoryError(f"unclosed block (expected {end!r})")
            pos += 1
        return out

    try:
        return message(None)
    except IndexError:
        raise RepositoryError("config ends in the middle of a value") from None


def _check_bls(repo: Path, model_dir: Path) -> list[str]:
    """A fundus_restore that calls raw models through BLS: each must be in the repository with the tensor
    names it will be called with."""
    settings_path = model_dir / "1" / "ftrt.json"
    if not settings_path.is_file():
        return []
    try:
        network = json.loads(settings_path.read_text()).get("network") or {}
    except (OSError, json.JSONDecodeError, AttributeError):
        return [f"{settings_path}: not a JSON object"]
    problems = []
    for role in ("restorer", "gate"):
        target = network.get(role)
        if network.get("mode") != "bls" or not target:
            continue
        cfg_path = repo / str(target.get("model_name")) / "config.pbtxt"
        if not cfg_path.is_file():
            problems.append(f"{settings_path}: BLS {role} model {target.get('model_name')!r} is not in the repository")
            continue
        cfg = parse_pbtxt(cfg_path.read_text())
        names = {t["name"] for t in cfg.get("input", [])}, {t["name"] for t in cfg.get("output", [])}
        if target.get("input_name") not in names[0] or target.get("output_name") not in names[1]:
            problems.append(f"{settings_path}: BLS {role} calls {target.get('model_name')} with "
                            f"{target.get('input_name')} -> {target.get('output_name')}, which its config lacks")
    return problems


def check_repository(repo: str | Path) -> list[str]:
    """Problems found (empty: sound): every config parses, names match their folders, a version folder with
    its model file exists, and ONNX configs agree with the model's own I/O (names, types, dims)."""
    repo = Path(repo)
    problems: list[str] = []
    for cfg_path in sorted(repo.glob("*/config.pbtxt")):
        model_dir = cfg_path.parent
        try:
            cfg = parse_pbtxt(cfg_path.read_text())
        except RepositoryError as exc:
            problems.append(f"{cfg_path}: does not parse ({exc})")
            continue
        if cfg.get("name") != model_dir.name:
            problems.append(f"{cfg_path}: name {cfg.get('name')!r} is not the folder's {model_dir.name!r}")
        platform = cfg.get("platform") or cfg.get("backend")
        files = {"onnxruntime_onnx": "model.onnx", "tensorrt_plan": "model.plan", "python": "model.py"}
        if platform not in files:
            problems.append(f"{cfg_path}: unknown platform/backend {platform!r}")
            continue
        version = model_dir / "1" / files[platform]
        if not version.is_file():
            problems.append(f"{model_dir}: no {version.relative_to(model_dir)}")
            continue
        problems += _check_bls(repo, model_dir)
        onnx_file = model_dir / "1" / "model.onnx"
        if platform == "onnxruntime_onnx" or (platform == "python" and onnx_file.is_file()):
            want = onnx_entry(model_dir.name, onnx_file, int(cfg.get("max_batch_size", 0)) or 0)
            for role, have in (("input", cfg.get("input", [])), ("output", cfg.get("output", []))):
                expected = {t.name: t for t in (want.inputs if role == "input" else want.outputs)}
                got = {t["name"]: t for t in have}
                if set(got) != set(expected):
                    problems.append(f"{cfg_path}: {role}s {sorted(got)} but the model has {sorted(expected)}")
                    continue
                for n, t in got.items():
                    if t.get("data_type") != expected[n].data_type or list(t.get("dims", [])) != expected[n].dims:
                        problems.append(f"{cfg_path}: {role} {n} is {t.get('data_type')} {t.get('dims')}, the model "
                                        f"says {expected[n].data_type} {expected[n].dims}")
    if not list(repo.glob("*/config.pbtxt")):
        problems.append(f"{repo}: no model folders with a config.pbtxt")
    return problems
