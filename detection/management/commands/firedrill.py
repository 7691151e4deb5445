"""Fire drill against the running stack (`make run`): inject each demo fault in turn, wait for
detection, recover, check that the incident resolved by itself, and print the table.

    manage.py firedrill
    manage.py firedrill --fault error:payment:0.5 --fault crash:catalog --detect-timeout 60
"""
from django.core.management.base import BaseCommand, CommandError

from detection.chaos import ChaosClient, ChaosError
from detection.firedrill import DEFAULT_FAULTS, Fault, format_table, quiet_period, run_fault
from detection.models import DetectionRule


class Command(BaseCommand):
    help = "Inject each demo fault, measure detection (MTTD) and automatic resolution, print a table."

    def add_arguments(self, parser):
        parser.add_argument("--fault", action="append", help="error:SERVICE:RATE | latency:SERVICE:MS | crash:SERVICE")
        parser.add_argument("--detect-timeout", type=float, default=90)
        parser.add_argument("--resolve-timeout", type=float, default=240)

    def handle(self, *args, fault=None, detect_timeout=90, resolve_timeout=240, **_):
        try:
            faults = [Fault.parse(f) for f in fault] if fault else DEFAULT_FAULTS
            chaos = ChaosClient.from_settings()
            chaos.status()  # fail fast, with one line, when the workload is not running
        except ChaosError as exc:
            raise CommandError(str(exc)) from None
        if not DetectionRule.objects.filter(enabled=True).exists():
            raise CommandError("no enabled detection rules; run `manage.py seed_detection_rules`")
        results = []
        for item in faults:
            quiet_period(resolve_timeout)
            try:
                results.append(run_fault(chaos, item, detect_timeout=detect_timeout, resolve_timeout=resolve_timeout,
                                         log=lambda m: self.stdout.write(f"  {m}")))
            except ChaosError as exc:
                raise CommandError(f"{item}: {exc}") from None
        self.stdout.write("\n" + format_table(results))
