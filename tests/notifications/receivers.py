"""Moved to reliability_studio.devtools.receivers (bench/ uses it too, and must not import tests/)."""
from reliability_studio.devtools.receivers import *  # noqa: F401,F403
