#!/usr/bin/env python
"""Django's command-line utility for Reliability Studio."""
import os
import sys


def main() -> None:
    # Development on a workstation (reads .env); deployments set DJANGO_SETTINGS_MODULE to
    # reliability_studio.settings.production (docker-compose, the image, Kubernetes).
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "reliability_studio.settings.development")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        settings.INSTALLED_APPS  # loads the settings module: a missing SECRET_KEY is one line, not a traceback
    except ImproperlyConfigured as exc:
        sys.exit(f"ImproperlyConfigured: {exc}")
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
