"""The camera side of serving: send a photograph to ``fundus_restore`` on a Triton server, get it back restored.

``RemoteRestorer(url)`` plugs into the per-file job (``ftrt.jobs.RestoreJob(process=...)``), so
``ftrt restore --server URL`` and ``ftrt watch --server URL`` write the same outputs, names and records
as local processing. http:// and grpc:// URLs (tritonclient, the ``serving`` extra).

A server that is down or restarting is waited for, with back-off, up to ``wait`` seconds; after that the
error is transient (an OSError the watcher retries later, never a verdict on the file). A request the
server refuses (wrong size, a model error) is the file's error and is not retried.
"""

from __future__ import annotations

import errno
import json
import time
from typing import Any, Callable
from urllib.parse import urlparse

import numpy as np

from ftrt.deps import require
from ftrt.fov import fov_mask
from ftrt.io.images import to_uint8

MODEL = "fundus_restore"


class ServerUnavailable(OSError):
    """The server could not be reached in time (transient: try again later)."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.EAGAIN, message)

    def __str__(self) -> str:
        return str(self.strerror)


def _unreachable(exc: BaseException) -> bool:
    """Whether an error means the server is not there (yet), not that it refused this request. A model with
    "no available versions" is one being loaded or unloaded (a server starting or stopping: measured in the
    restart case of benchmarks/serving.py), not a model the server lacks ("... is not found")."""
    if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
        return True
    text = f"{type(exc).__name__} {exc}".lower()
    return any(k in text for k in ("unavailable", "connection refused", "failed to connect", "connect failed",
                                   "broken pipe", "reset by peer", "timed out", "deadline", "not ready",
                                   "socket closed", "503", "no available versions", "shutting down",
                                   "server is stopping", "exiting"))


class RemoteRestorer:
    """``process(image) -> (restored, FOV mask, record fields)`` through a Triton server."""

    def __init__(self, url: str, model: str = MODEL, wait: float = 60.0, timeout: float = 120.0,
                 log: Callable[[str], None] | None = None) -> None:
        u = urlparse(url if "://" in url else f"http://{url}")
        if u.scheme not in ("http", "grpc") or not u.hostname:
            raise ValueError(f"--server {url}: give http://HOST:PORT or grpc://HOST:PORT")
        self.url, self.scheme, self.model, self.wait, self.timeout = url, u.scheme, model, wait, timeout
        self.address = f"{u.hostname}:{u.port or (8001 if u.scheme == 'grpc' else 8000)}"
        self.log = log
        mod = require(f"tritonclient.{u.scheme}", "--server (the serving extra)")
        self.client_mod = mod
        self.client = self._connect()

    def _connect(self) -> Any:
        if self.scheme == "grpc":
            return self.client_mod.InferenceServerClient(self.address)
        return self.client_mod.InferenceServerClient(self.address, connection_timeout=self.timeout,
                                                     network_timeout=self.timeout)

    def close(self) -> None:
        """Close the connection (an open one keeps the server waiting when it is asked to stop)."""
        try:
            self.client.close()
        except Exception:  # noqa: BLE001 - closing a dead connection is not an error
            pass

    def describe(self) -> dict[str, Any]:
        return {"server": self.url, "server_model": self.model}

    def _infer(self, img_u8: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        m = self.client_mod
        inp = m.InferInput("IMAGE", list(img_u8.shape), "UINT8")
        inp.set_data_from_numpy(np.ascontiguousarray(img_u8))
        outs = [m.InferRequestedOutput("RESTORED"), m.InferRequestedOutput("RECORD")]
        kwargs = {"client_timeout": self.timeout} if self.scheme == "grpc" else {}
        res = self.client.infer(self.model, [inp], outputs=outs, **kwargs)
        restored = res.as_numpy("RESTORED")
        raw = res.as_numpy("RECORD")
        if restored is None or restored.shape != img_u8.shape or restored.dtype != np.uint8:
            raise ValueError(f"server {self.url} returned no usable RESTORED tensor")
        record = json.loads(raw.reshape(-1)[0]) if raw is not None and raw.size else {}
        return restored, record

    def __call__(self, img: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        img_u8 = to_uint8(img)
        deadline = time.monotonic() + self.wait
        delay = 0.5
        while True:
            try:
                restored, record = self._infer(img_u8)
                break
            except Exception as exc:  # noqa: BLE001 - tritonclient raises its own and the transport's types
                if not _unreachable(exc):
                    m = getattr(exc, "message", None)
                    msg = str((m() if callable(m) else m) or exc).strip().splitlines()
                    raise ValueError(f"server {self.url} refused it: {msg[0] if msg else type(exc).__name__}") \
                        from None
                if time.monotonic() + delay > deadline:
                    raise ServerUnavailable(f"server {self.url} unreachable for {self.wait:.0f} s "
                                            f"({type(exc).__name__})") from None
                if self.log is not None:
                    self.log(f"server {self.url} not answering ({type(exc).__name__}); retrying in {delay:.1f} s")
                time.sleep(delay)
                delay = min(delay * 2, 8.0)
                try:
                    self.client = self._connect()
                except Exception:  # noqa: BLE001 - reconnect on the next try
                    pass
        record.pop("status", None)
        record.pop("shape", None)
        extra = {**record, **self.describe()}
        return restored.astype(np.float32) / 255.0, fov_mask(img), extra
