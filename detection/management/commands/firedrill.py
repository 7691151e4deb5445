"""Fire drill against the running stack (`make run`): inject each demo fault in turn, wait for
detection, recover, check that the incident resolved by itself, and print the table.

    manage.py firedrill
    manage.py firedrill --fault error:payment:0.5 --fault crash:catalog --detect-timeout 60

With --compare-remediation each fault runs twice: automatic remediation allowed (the runbooks'
`automatic` steps run by themselves at their confidence), and off (the kill switch, engaged by the
drill and released after); in the run without, the drill lifts the fault --human-response seconds
after detection, as a person would. It prints MTTR (injected → resolved) for both, per fault and
p50, and the difference; last line one JSON object.

    manage.py firedrill --compare-remediation [--n 2] [--human-response 300] [--settle S]
"""
import json

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from detection.chaos import DEMO_DISABLED, ChaosClient, ChaosError
from detection.firedrill import (
    DEFAULT_FAULTS,
    HUMAN_RESPONSE_SECONDS,
    Fault,
    compare_remediation,
    format_mttr_runs,
    format_mttr_table,
    format_table,
    quiet_period,
    run_fault,
    summarize_mttr,
)
from detection.models import DetectionRule
from remediation.drill import DrillPreconditionError, automatic_remediation, check_automation_possible


class Command(BaseCommand):
    help = ("Inject each demo fault, measure detection (MTTD) and automatic resolution, print a table; "
            "--compare-remediation: MTTR with and without automatic remediation.")

    def add_arguments(self, parser):
        parser.add_argument("--fault", action="append", help="error:SERVICE:RATE | latency:SERVICE:MS | crash:SERVICE")
        parser.add_argument("--detect-timeout", type=float, default=90)
        parser.add_argument("--resolve-timeout", type=float, default=240)
        parser.add_argument("--compare-remediation", action="store_true",
                            help="run each fault with and without automatic remediation and compare MTTR")
        parser.add_argument("--n", type=int, default=1, help="with --compare-remediation: runs per fault and mode")
        parser.add_argument("--human-response", type=float, default=HUMAN_RESPONSE_SECONDS,
                            help="with --compare-remediation: seconds after detection at which the drill lifts a "
                                 f"fault still present, as a person would (default {HUMAN_RESPONSE_SECONDS:g})")
        parser.add_argument("--settle", type=float, default=None,
                            help="with --compare-remediation: seconds between one fault's end and the next injection "
                                 "(default: INVESTIGATION_WINDOW_LEAD_SECONDS + 15, so one fault's tail does not "
                                 "mislead the next investigation)")

    def handle(self, *args, fault=None, detect_timeout=90, resolve_timeout=240, compare_remediation=False, n=1,
               human_response=HUMAN_RESPONSE_SECONDS, settle=None, **_):
        if not settings.DEMO_ENABLED:
            raise CommandError(DEMO_DISABLED)
        if n < 1:
            raise CommandError(f"--n must be at least 1, got {n}")
        if human_response < 0:
            raise CommandError(f"--human-response must not be negative, got {human_response:g}")
        if settle is not None and settle < 0:
            raise CommandError(f"--settle must not be negative, got {settle:g}")
        try:
            faults = [Fault.parse(f) for f in fault] if fault else DEFAULT_FAULTS
            chaos = ChaosClient.from_settings()
            chaos.status()  # fail fast, with one line, when the workload is not running
        except ChaosError as exc:
            raise CommandError(str(exc)) from None
        if not DetectionRule.objects.filter(enabled=True).exists():
            raise CommandError("no enabled detection rules; run `manage.py seed_detection_rules`")
        if compare_remediation:
            return self._compare(chaos, faults, n=n, human_response=human_response, settle=settle,
                                 detect_timeout=detect_timeout, resolve_timeout=resolve_timeout)
        results = []
        for item in faults:
            quiet_period(resolve_timeout)
            try:
                results.append(run_fault(chaos, item, detect_timeout=detect_timeout, resolve_timeout=resolve_timeout,
                                         log=lambda m: self.stdout.write(f"  {m}")))
            except ChaosError as exc:
                raise CommandError(f"{item}: {exc}") from None
        self.stdout.write("\n" + format_table(results))

    def _compare(self, chaos, faults, *, n, human_response, settle, detect_timeout, resolve_timeout):
        try:
            steps = check_automation_possible()
        except DrillPreconditionError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"automatic steps: {', '.join(steps)}")
        try:
            runs = compare_remediation(chaos, faults, automatic_remediation=automatic_remediation, n=n,
                                       human_response=human_response, settle=settle, detect_timeout=detect_timeout,
                                       resolve_timeout=resolve_timeout, log=lambda m: self.stdout.write(f"  {m}"))
        except ChaosError as exc:
            raise CommandError(str(exc)) from None
        summary = summarize_mttr(runs, human_response=human_response)
        self.stdout.write("\n" + format_mttr_runs(runs) + "\n\n" + format_mttr_table(summary))
        self.stdout.write(json.dumps(summary))
