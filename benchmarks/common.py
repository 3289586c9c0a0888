"""Helpers shared by the benchmark drivers: the machine line and writing a Markdown report."""

from __future__ import annotations

import platform
import time
from pathlib import Path


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def write_report(out: str | Path, lines: list[str]) -> str:
    text = "\n".join(lines) + "\n"
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(text)
    print(text)
    return text


def time_ms(fn, warmup: int, runs: int) -> list[float]:
    """``warmup`` untimed calls, then the wall time of each of ``runs`` calls in milliseconds."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e3)
    return out
