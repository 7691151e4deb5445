"""Moved to reliability_studio.devtools.prometheus (bench/ uses it too, and must not import tests/)."""
from reliability_studio.devtools.prometheus import *  # noqa: F401,F403
from reliability_studio.devtools.prometheus import _free_port, _wait_ready, _write_config  # noqa: F401
