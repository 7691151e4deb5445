"""Load runbooks from YAML: manage.py load_runbooks [runbooks/ | file.yaml ...]

Every file is validated first (errors name the file and line) and everything loads in one
transaction: a bad file changes nothing. Runbooks are matched by name and updated; runbooks no
longer in the files are left alone unless --prune disables them.
"""
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from remediation import runbooks, services
from remediation.models import Runbook


class Command(BaseCommand):
    help = "Create or update runbooks from YAML files (default: REMEDIATION_RUNBOOK_DIR)."

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="*", type=Path)
        parser.add_argument("--prune", action="store_true", help="disable file-loaded runbooks missing from the files")
        parser.add_argument("--check", action="store_true", help="validate only; change nothing")

    def handle(self, *args, paths, prune, check, **_):
        paths = paths or [Path(settings.REMEDIATION_RUNBOOK_DIR)]
        try:
            found = runbooks.parse_paths(paths)
        except runbooks.RunbookError as exc:
            raise CommandError(str(exc)) from None
        if check:
            self.stdout.write(f"runbooks valid: {len(found)}")
            return
        created = 0
        with transaction.atomic():
            for file, clean in found:
                _runbook, new = services.save_runbook(clean=clean, source_file=file)
                created += new
            disabled = 0
            if prune:
                names = [clean["name"] for _file, clean in found]
                disabled = (Runbook.objects.exclude(source_file="").exclude(name__in=names).filter(enabled=True)
                            .update(enabled=False))
        self.stdout.write(f"runbooks loaded: {len(found)} ({created} new, {len(found) - created} updated"
                          + (f", {disabled} disabled" if prune else "") + ")")
