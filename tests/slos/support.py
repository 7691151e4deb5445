"""Moved to reliability_studio.devtools.slo_data (bench/ uses it too, and must not import tests/)."""
from reliability_studio.devtools.slo_data import *  # noqa: F401,F403
