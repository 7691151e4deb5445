"""Settings per environment: `common` (shared), `development`, `production`, `test`.

Pick one with DJANGO_SETTINGS_MODULE=reliability_studio.settings.<name>. manage.py defaults to
development; the ASGI app and Celery default to production (fail closed: it needs SECRET_KEY and
DATABASE_URL); pytest uses test (pyproject.toml).
"""
import os

from django.core.exceptions import ImproperlyConfigured

if os.environ.get("DJANGO_SETTINGS_MODULE", "").rstrip(".") == __name__:
    raise ImproperlyConfigured(
        f"DJANGO_SETTINGS_MODULE={__name__} is a package; use {__name__}.production, .development or .test")
