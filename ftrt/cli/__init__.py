"""The ``ftrt`` command line: a thin layer over the Python API, one module per area.

images (degrade, enhance, sample, evaluate), run (restore, assess, info), watch, precision (calibrate,
convert), models (export, build-engine, profile), train. Each command parses options, calls one API
function and prints; the work itself lives in the API it belongs to.
"""

from ftrt.cli import images, models, precision, run, serving, train, watch  # noqa: F401 - registers the commands
from ftrt.cli.common import BACKEND_CHOICES, DEGRADE_KINDS
from ftrt.cli.main import main


__all__ = ["BACKEND_CHOICES", "DEGRADE_KINDS", "main"]
