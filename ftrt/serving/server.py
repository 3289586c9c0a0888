"""``ftrt serve``: Triton Inference Server on this machine with an ftrt model repository.

The server is a ``tritonserver`` binary: one on PATH (NGC container, production), or the one bundled with
the PyPI package ``nvidia-pytriton`` (Python backend only; it pins numpy < 2, so it lives in its own
environment, the *serving environment*, with ftrt installed there too). The Python backend runs
``fundus_restore`` in a stub that embeds that environment's Python: the stub matching its version is put in
place, its ``libpython`` directory goes on LD_LIBRARY_PATH (asked of that interpreter, never hard-coded)
and its site folders are handed to the model (FTRT_SITE).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ftrt.serving.repository import parse_pbtxt

BACKEND_DIRS = {"onnxruntime_onnx": "onnxruntime", "tensorrt_plan": "tensorrt", "python": "python"}


class ServeError(RuntimeError):
    """The server cannot be found, started or reached (one line, with what to do)."""


@dataclass
class TritonDist:
    binary: Path
    backends: Path
    libs: list[Path] = field(default_factory=list)
    stubs: Path | None = None  # per-Python-version stubs (nvidia-pytriton's layout)
    python: Path | None = None  # the serving environment's interpreter
    site: list[str] = field(default_factory=list)


def _ask(python: Path, code: str) -> str:
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise ServeError(f"{python}: {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else 'failed'}")
    return out.stdout.strip()


def find_triton(serving_env: str | None = None, tritonserver: str | None = None) -> TritonDist:
    """Where Triton is: ``tritonserver`` (a path, or on PATH with backends beside it), else nvidia-pytriton in
    the serving environment (``serving_env``, $FTRT_SERVING_ENV, or this interpreter's)."""
    env = serving_env or os.environ.get("FTRT_SERVING_ENV")
    python = Path(env) / "bin" / "python" if env else Path(sys.executable)
    if env and not python.exists():
        raise ServeError(f"{env}: not a Python environment (no bin/python)")
    site = _ask(python, "import site, json; print(json.dumps(site.getsitepackages()))")
    import json

    sites = json.loads(site)
    binary = Path(tritonserver) if tritonserver else (Path(p) if (p := shutil.which("tritonserver")) else None)
    if binary is not None:
        if not binary.is_file():
            raise ServeError(f"{binary}: no such tritonserver")
        backends = Path(os.environ.get("TRITON_BACKENDS", binary.parent.parent / "backends"))
        return TritonDist(binary, backends, python=python, site=sites)
    root = _ask(python, "import pathlib, pytriton; print(pathlib.Path(pytriton.__file__).parent)")
    if not root or not Path(root).is_dir():
        raise ServeError("no Triton server found: install one (NGC container, `tritonserver` on PATH) or "
                         "nvidia-pytriton in a serving environment: python -m venv .venv-serving && "
                         ".venv-serving/bin/pip install nvidia-pytriton 'tritonclient[http,grpc]' -e . "
                         "(then --serving-env .venv-serving)")
    dist = Path(root) / "tritonserver"
    libs = [Path(root).parent / "nvidia_pytriton.libs", Path(_ask(python, "import sysconfig; "
                                                                     "print(sysconfig.get_config_var('LIBDIR'))"))]
    return TritonDist(dist / "bin" / "tritonserver", dist / "backends", libs, dist / "python_backend_stubs",
                      python, sites)


def prepare(dist: TritonDist, workspace: Path) -> TritonDist:
    """A private copy of a pytriton distribution with the Python stub of the serving environment's version
    in place (the packaged tree is never modified); a system Triton is used as it is."""
    if dist.stubs is None:
        return dist
    version = _ask(dist.python or Path(sys.executable), "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')")
    stub = dist.stubs / version / "triton_python_backend_stub"
    if not stub.is_file():
        raise ServeError(f"nvidia-pytriton has no Python backend stub for Python {version}")
    target = workspace / "tritonserver"
    shutil.copytree(dist.binary.parent.parent, target, ignore=shutil.ignore_patterns("python_backend_stubs"))
    shutil.copy(stub, target / "backends" / "python" / "triton_python_backend_stub")
    return TritonDist(target / "bin" / "tritonserver", target / "backends", dist.libs, None, dist.python, dist.site)


def servable_models(repo: Path, backends: Path) -> tuple[list[str], list[str]]:
    """(models this server has a backend for, the others with the reason) of a repository."""
    ok, skipped = [], []
    for cfg in sorted(repo.glob("*/config.pbtxt")):
        parsed = parse_pbtxt(cfg.read_text())
        kind = parsed.get("platform") or parsed.get("backend")
        name = cfg.parent.name
        if (backends / BACKEND_DIRS.get(str(kind), str(kind))).is_dir():
            ok.append(name)
        else:
            skipped.append(f"{name} ({kind}: this server has no {BACKEND_DIRS.get(str(kind), kind)} backend)")
    return ok, skipped


@dataclass
class Endpoints:
    host: str
    http: int
    grpc: int
    metrics: int

    def lines(self) -> list[str]:
        return [f"http    http://{self.host}:{self.http}  (v2: /v2/health/ready, /v2/models/<name>/infer)",
                f"grpc    grpc://{self.host}:{self.grpc}", f"metrics http://{self.host}:{self.metrics}/metrics"]


def start(repo: Path, dist: TritonDist, ends: Endpoints, models: list[str], log: Path) -> subprocess.Popen:
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.pathsep.join([*(str(p) for p in dist.libs), env.get("LD_LIBRARY_PATH", "")]).strip(
        os.pathsep)
    env["FTRT_SITE"] = os.pathsep.join(dist.site)
    cmd = [str(dist.binary), "--model-repository", str(repo), "--backend-directory", str(dist.backends),
           "--model-control-mode", "explicit", *[a for m in models for a in ("--load-model", m)],
           "--http-address", ends.host, "--grpc-address", ends.host, "--metrics-address", ends.host,
           "--http-port", str(ends.http), "--grpc-port", str(ends.grpc), "--metrics-port", str(ends.metrics),
           "--exit-timeout-secs", "20", "--log-verbose", "0"]
    fh = open(log, "ab")
    # Its own session: a terminal's Ctrl-C reaches ftrt, which stops the server in order.
    return subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)


def free_ports(n: int) -> list[int]:
    """``n`` distinct loopback ports free at the time of asking (for tests and benchmarks)."""
    import socket

    socks = [socket.socket() for _ in range(n)]
    for sk in socks:
        sk.bind(("127.0.0.1", 0))
    ports = [sk.getsockname()[1] for sk in socks]
    for sk in socks:
        sk.close()
    return ports


def start_serve(args: list[str], http_port: int, timeout: float = 300.0) -> subprocess.Popen:
    """``ftrt serve ARGS`` as a child process, returned once its HTTP endpoint says ready (tests and the
    serving benchmark); raises RuntimeError with the server's stderr if it exits first."""
    proc = subprocess.Popen([sys.executable, "-m", "ftrt.cli", "serve", *args, "--http-port", str(http_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ftrt serve exited with {proc.returncode}: {proc.communicate()[1][-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/v2/health/ready", timeout=1) as r:  # noqa: S310
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"ftrt serve not ready after {timeout:.0f} s")


def wait_ready(proc: subprocess.Popen, ends: Endpoints, timeout: float, log: Path) -> None:
    url = f"http://{ends.host}:{ends.http}/v2/health/ready"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = [ln for ln in log.read_text(errors="replace").splitlines() if "error" in ln.lower()][-1:]
            raise ServeError(f"tritonserver exited with {proc.returncode}: {tail[0][:300] if tail else 'see ' + str(log)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 - loopback URL we built
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise ServeError(f"tritonserver not ready after {timeout:.0f} s (log: {log})")


def stop(proc: subprocess.Popen, grace: float = 25.0) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return int(proc.returncode)


def serve(repo: Path, ends: Endpoints, serving_env: str | None = None, tritonserver: str | None = None,
          ready_timeout: float = 120.0, log: Callable[[str], None] = print,
          until: Callable[[], bool] | None = None) -> int:
    """Start Triton with ``repo``, wait until ready, print the endpoints, serve until SIGTERM/SIGINT (or
    ``until()``), stop it cleanly; returns the server's exit status."""
    dist = find_triton(serving_env, tritonserver)
    with tempfile.TemporaryDirectory(prefix="ftrt-serve-") as tmp:
        ready = prepare(dist, Path(tmp))
        models, skipped = servable_models(repo, ready.backends)
        for s in skipped:
            log(f"not loaded: {s}")
        if not models:
            raise ServeError(f"{repo}: no model this server can run")
        logfile = Path(tmp) / "tritonserver.log"
        proc = start(repo, ready, ends, models, logfile)
        stopping = {"now": False}

        def on_signal(signum: int, frame: object) -> None:
            stopping["now"] = True

        old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            wait_ready(proc, ends, ready_timeout, logfile)
            log(f"serving {', '.join(models)} from {repo}")
            for line in ends.lines():
                log(line)
            while not stopping["now"] and proc.poll() is None and not (until and until()):
                time.sleep(0.2)
            if proc.poll() is not None and not stopping["now"]:
                raise ServeError(f"tritonserver stopped by itself with {proc.returncode} (log: {logfile})")
        finally:
            code = stop(proc)
            for s, h in old.items():
                signal.signal(s, h)
        if code != 0:
            for line in [ln for ln in logfile.read_text(errors="replace").splitlines() if ln.startswith("E")][-3:]:
                log(f"tritonserver: {line[:300]}")
        log(f"stopped (tritonserver exit {code})")
        return code
