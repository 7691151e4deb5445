import json

from django.conf import settings
from django.core.management.base import BaseCommand

from slos import services


class Command(BaseCommand):
    help = "Recompute every enabled SLO now (what beat runs every SLO_RECOMPUTE_SECONDS)."

    def add_arguments(self, parser):
        parser.add_argument("--no-alerts", action="store_true", help="do not feed burn alerts to detection")

    def handle(self, *args, no_alerts=False, **options):
        stats = services.recompute_slos(batch=settings.SLO_BATCH_QUERIES, alerts=not no_alerts)
        self.stdout.write(json.dumps({"slos": stats.slos, "queries": stats.queries, "failed": stats.failed,
                                      "seconds": round(stats.seconds, 3)}))
