"""Output names: unique whatever the inputs are called, and the same for the same input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ftrt.batch import BatchNames
from ftrt.cli import main
from ftrt.io import write_image
from ftrt.watch import _outputs, output_name
from tests.adversarial import hostile as h

SETS = {
    "stem_shared_by_suffixes": ["a.jpg", "a.png", "a.tif"],
    "numbered_name_exists": ["a.jpg", "a.png", "a_1.png", "a_jpg.png"],
    "case_only": ["a.png", "a.PNG", "A.png"],
    "compare_name_is_an_input": ["x.png", "x_compare.png"],
    "same_name_two_folders": ["d1/a.png", "d2/a.png", "d1/b.png"],
}


@pytest.mark.parametrize("case", sorted(SETS))
def test_batch_names_are_unique_case_insensitively(case: str) -> None:
    files = [Path("/data") / n for n in SETS[case]]
    names = BatchNames(files)
    produced = [names(f, role, ".png").casefold() for f in files for role in ("image", "compare")]
    assert len(set(produced)) == len(produced)


@pytest.mark.parametrize("case", sorted(SETS))
def test_batch_names_do_not_depend_on_order(case: str) -> None:
    files = [Path("/data") / n for n in SETS[case]]
    a, b = BatchNames(files), BatchNames(files[::-1])
    assert all(a(f, "image", ".png") == b(f, "image", ".png") for f in files)


def test_plain_names_stay_plain() -> None:
    files = [Path("/data/a.png"), Path("/data/b.jpg")]
    names = BatchNames(files)
    assert [names(f, "image", ".png") for f in files] == ["a.png", "b.png"]


@pytest.mark.parametrize("pair", [("a.png", "a.PNG"), ("a.jpg", "a.png"), ("x.png", "x.png.restored.png")])
def test_watch_names_never_collide(pair: tuple[str, str]) -> None:
    one, two = (set(_outputs(Path(n)).values()) for n in pair)
    assert not one & two


def test_watch_name_is_bounded_and_stable() -> None:
    long = "é" * 200 + ".png"
    name = output_name(Path(long))
    assert len(name.encode()) <= 255 and name == output_name(Path(long))
    assert name != output_name(Path("é" * 199 + "x.png"))


def test_restore_collisions_write_every_result(tmp_path: Path, random_onnx: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    img = h.small_rgb().astype(np.float32) / 255
    for i, n in enumerate(["a.jpg", "a.png", "a_1.png", "x.png", "x_compare.png"]):
        write_image(d / n, np.clip(img * (0.6 + 0.1 * i), 0, 1))
    out = tmp_path / "out"
    args = ["restore", str(d), "-o", str(out), "--model", str(random_onnx), "--max-side", "64", "--threads", "1",
            "--side-by-side", "--json"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    import json

    recs = [json.loads(line) for line in r.output.splitlines() if line.startswith("{")]
    written = {Path(rec["output"]).name for rec in recs} | {rec["side_by_side"] for rec in recs}
    assert len(written) == 10 and written == {p.name for p in out.iterdir()}
    again = CliRunner().invoke(main, args)
    assert {Path(json.loads(x)["output"]).name for x in again.output.splitlines() if x.startswith("{")} == \
        {Path(rec["output"]).name for rec in recs}
