import sys

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from slos import services


class Command(BaseCommand):
    help = ("Create or update SLOs from OpenSLO v1 YAML (a file or - for stdin). All or nothing: unsupported "
            "fields are refused with their names and nothing is written.")

    def add_arguments(self, parser):
        parser.add_argument("file", help="YAML file, or - for stdin")
        parser.add_argument("--no-check-source", action="store_true", help="skip validating queries against Prometheus")

    def handle(self, *args, file, no_check_source=False, **options):
        try:
            text = sys.stdin.read() if file == "-" else open(file, encoding="utf-8").read()
        except OSError as exc:
            raise CommandError(f"cannot read {file}: {exc.strerror}") from None
        try:
            results = services.import_openslo(text=text, check_source=not no_check_source)
        except ValidationError as exc:
            raise CommandError(" ".join(" ".join(m.split()) for m in exc.messages)) from None
        created = sum(1 for _, was_created in results if was_created)
        self.stdout.write(f"OpenSLO: {created} created, {len(results) - created} updated "
                          f"({', '.join(slo.slug for slo, _ in results)})")
