"""Moved to reliability_studio.devtools.servers (bench/ uses it too, and must not import tests/)."""
from reliability_studio.devtools.servers import *  # noqa: F401,F403
from reliability_studio.devtools.servers import ROOT, _Process  # noqa: F401
