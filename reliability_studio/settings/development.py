"""Development: `make run` and manage.py on a workstation.

Reads the local `.env` (written by `make run`; the environment wins over it), DEBUG on unless
DEBUG=false, a generated secret when none is set (sessions then end when the process restarts),
cookies without Secure (plain HTTP on loopback), the demo's chaos API and fire drill on.
"""
from pathlib import Path

import environ
from django.core.management.utils import get_random_secret_key

# Read before common is imported, so that .env feeds every value common reads.
_DOTENV = Path(__file__).resolve().parent.parent.parent / ".env"
if _DOTENV.exists():
    environ.Env.read_env(str(_DOTENV), overwrite=False)

from .common import *  # noqa: E402,F403
from .common import env  # noqa: E402

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env.str("SECRET_KEY", default="") or get_random_secret_key()
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=False)
DEMO_ENABLED = env.bool("DEMO_ENABLED", default=True)
