"""Moved to reliability_studio.devtools.shop (bench/ uses it too, and must not import tests/)."""
from reliability_studio.devtools.shop import *  # noqa: F401,F403
