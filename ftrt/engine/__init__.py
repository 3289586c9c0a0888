"""TensorRT engines: optimisation profiles, the build (TensorRT 8.6 / 10 / 11), and the sidecar guard.

Importing this package needs neither TensorRT nor a GPU; the functions that do
raise :class:`TensorRTUnavailable` with the line that installs it.
"""

from ftrt.engine.errors import TensorRTUnavailable
from ftrt.engine.host import host_info
from ftrt.engine.profiles import EngineProfile, default_profiles, parse_profile, select_profile
from ftrt.engine.sidecar import EngineMismatch, check_compatible, read_sidecar

__all__ = ["EngineMismatch", "EngineProfile", "TensorRTUnavailable", "check_compatible", "default_profiles",
           "host_info", "parse_profile", "read_sidecar", "select_profile"]
