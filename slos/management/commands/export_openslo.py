from django.core.management.base import BaseCommand

from slos.openslo import export_yaml

from ._selection import select_slos, write


class Command(BaseCommand):
    help = "Write SLOs as OpenSLO v1 YAML (one document per SLO)."

    def add_arguments(self, parser):
        parser.add_argument("slos", nargs="*", help="slugs or ids (default: all)")
        parser.add_argument("-o", "--output", help="file to write (default: stdout)")

    def handle(self, *args, slos=None, output=None, **options):
        write(self, export_yaml(select_slos(slos)), output)
