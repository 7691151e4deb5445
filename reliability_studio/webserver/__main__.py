"""`python -m reliability_studio.webserver`: see the package docstring."""
import sys

from . import main

sys.exit(main())
