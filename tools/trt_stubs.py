"""Make tensorrt-stubs usable by mypy: copy them into a stub folder with Python-keyword parameters renamed.

tensorrt-stubs (10.x) is generated from the pybind11 signatures and has two
kinds of invalid Python that make mypy refuse the whole file: parameters named
``in``, and parameters without a default after ones with a default. This writes
``OUT/tensorrt/__init__.pyi`` and ``OUT/tensorrt_bindings/*.pyi`` with ``in``
renamed to ``in_`` and ``= ...`` added where a default is missing (ftrt never
passes those by keyword); point ``MYPYPATH`` at OUT.

    python tools/trt_stubs.py .mypy_stubs
"""

from __future__ import annotations

import re
import sys
import sysconfig
from pathlib import Path

KEYWORD_PARAM = re.compile(r"\b(in|from|lambda|pass|class)(\s*:)")


def _split_params(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return parts


def fix_def(line: str) -> str:
    line = KEYWORD_PARAM.sub(r"\1_\2", line)
    start = line.find("(")
    depth, end = 0, -1
    for i in range(start, len(line)):
        depth += line[i] == "("
        depth -= line[i] == ")"
        if depth == 0:
            end = i
            break
    if start < 0 or end < 0:
        return line
    params = _split_params(line[start + 1:end])
    seen_default, fixed = False, []
    for p in params:
        bare = p.strip()
        if bare.startswith("*") or bare == "/":
            seen_default = False if bare.startswith("*") else seen_default
        elif "=" in bare:
            seen_default = True
        elif seen_default:
            p = f"{p} = ..."
        fixed.append(p)
    return line[:start + 1] + ",".join(fixed) + line[end:]


def main(out: str) -> int:
    site = Path(sysconfig.get_paths()["purelib"])
    written = 0
    for pkg in ("tensorrt", "tensorrt_bindings"):
        for src in sorted((site / pkg).glob("*.pyi")):
            dst = Path(out) / pkg / src.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            lines = []
            for line in src.read_text().splitlines():
                if line.lstrip().startswith("def "):
                    line = fix_def(line)
                lines.append(line)
            dst.write_text("\n".join(lines) + "\n")
            written += 1
    if not written:
        print(f"no tensorrt stubs under {site}: pip install --no-deps tensorrt-stubs", file=sys.stderr)
        return 1
    print(f"wrote {written} stub files to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else ".mypy_stubs"))
