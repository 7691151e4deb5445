"""Production: docker-compose, the image, Kubernetes, any real install.

Needs SECRET_KEY and DATABASE_URL in the environment (no .env is read, nothing is made up). DEBUG is
always off. HTTPS is assumed: HSTS, redirect to https (except the probes and /metrics, which
in-cluster callers reach over plain HTTP), Secure cookies. Behind a TLS-terminating proxy set
TRUST_X_FORWARDED_PROTO=true, or every request looks like plain HTTP and is redirected again.
The demo's chaos API and fire drill are off unless DEMO_ENABLED=true.
`manage.py check --deploy` passes with these defaults (tests/project/test_settings.py).
"""
import os

from django.core.exceptions import ImproperlyConfigured

from .common import *  # noqa: F403
from .common import env

for _name in ("SECRET_KEY", "DATABASE_URL"):
    if not os.environ.get(_name, "").strip():
        raise ImproperlyConfigured(
            f"{_name} is not set; production settings need it in the environment "
            "(for local work use DJANGO_SETTINGS_MODULE=reliability_studio.settings.development)")
if env.bool("DEBUG", default=False):
    raise ImproperlyConfigured(
        "DEBUG=true is refused by the production settings; use reliability_studio.settings.development")

DEBUG = False
SECRET_KEY = env.str("SECRET_KEY")
DEMO_ENABLED = env.bool("DEMO_ENABLED", default=False)

SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
# Patterns on the path without its leading slash: probes and scrapes come over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
