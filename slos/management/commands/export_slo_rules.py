from django.core.management.base import BaseCommand

from slos.rules import rules_yaml

from ._selection import select_slos, write


class Command(BaseCommand):
    help = "Write Prometheus recording and alerting rules (Sloth's shape) for SLOs; check with `promtool check rules`."

    def add_arguments(self, parser):
        parser.add_argument("slos", nargs="*", help="slugs or ids (default: all)")
        parser.add_argument("-o", "--output", help="file to write (default: stdout)")

    def handle(self, *args, slos=None, output=None, **options):
        write(self, rules_yaml(select_slos(slos)), output)
