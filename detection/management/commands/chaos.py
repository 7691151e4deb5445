"""Inject faults into the demo workload.

    manage.py chaos fail payment --error-rate 0.3
    manage.py chaos latency checkout --add 800ms
    manage.py chaos crash database
    manage.py chaos recover [SERVICE]
    manage.py chaos status
"""
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from detection.chaos import DEMO_DISABLED, ChaosClient, ChaosError, parse_duration_ms


class Command(BaseCommand):
    help = "Inject or clear faults in the demo workload (fail, latency, crash, recover, status)."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        fail = sub.add_parser("fail", help="make a share of the service's requests fail with 500")
        fail.add_argument("service")
        fail.add_argument("--error-rate", type=float, required=True)
        latency = sub.add_parser("latency", help="add latency to every request of the service")
        latency.add_argument("service")
        latency.add_argument("--add", required=True, help="e.g. 800ms or 1.5s")
        crash = sub.add_parser("crash", help="stop the service answering (connection refused)")
        crash.add_argument("service")
        recover = sub.add_parser("recover", help="clear the faults of one service, or of all")
        recover.add_argument("service", nargs="?")
        sub.add_parser("status", help="show active faults")

    def handle(self, *args, action, **opts):
        if not settings.DEMO_ENABLED:
            raise CommandError(DEMO_DISABLED)
        client = ChaosClient.from_settings()
        try:
            if action == "fail":
                state = client.fail(opts["service"], opts["error_rate"])
            elif action == "latency":
                state = client.latency(opts["service"], parse_duration_ms(opts["add"]))
            elif action == "crash":
                state = client.crash(opts["service"])
            elif action == "recover":
                state = client.recover(opts.get("service"))
            else:
                state = client.status()
        except ChaosError as exc:
            raise CommandError(str(exc)) from None
        self._print(state)

    def _print(self, state: dict) -> None:
        services = state.get("services") or {state["service"]: state}
        for name, info in services.items():
            described = ", ".join(_describe(fault) for fault in info.get("faults") or [])
            self.stdout.write(f"{name:<10} {'up' if info.get('up') else 'DOWN':<5} {described or 'healthy'}")


def _describe(fault: dict) -> str:
    if fault["kind"] == "error":
        return f"error rate {fault['error_rate']:g}"
    if fault["kind"] == "latency":
        return f"latency +{fault['add_ms']:g}ms"
    return fault["kind"]
