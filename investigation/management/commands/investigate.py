"""Run one investigation synchronously, with its progress on the terminal, then print the summary
and the ranking.

    manage.py investigate INC-7
"""
from django.core.management.base import BaseCommand, CommandError

from incidents.models import Incident
from investigation import services
from investigation.models import Trigger


def incident_for(key: str) -> Incident:
    raw = key.strip().upper().removeprefix("INC-")
    if not raw.isdigit():
        raise CommandError(f"{key!r} is not an incident key; use INC-<number> or the number")
    incident = Incident.objects.filter(pk=int(raw)).first()
    if incident is None:
        raise CommandError(f"no incident INC-{int(raw)}")
    return incident


class Command(BaseCommand):
    help = "Investigate an incident now (a manual run), showing each step, then the summary and ranking."

    def add_arguments(self, parser):
        parser.add_argument("incident", help="INC-7 or 7")

    def handle(self, *args, incident, **options):
        target = incident_for(incident)
        run = services.start_investigation(incident=target, trigger=Trigger.MANUAL, queue=False)
        self.stdout.write(f"{target.key}: investigation run {run.pk}")

        def progress(run, step, state, detail):
            if state == "running":
                return
            self.stdout.write(f"  {step:<12} {state:<15} {detail}".rstrip())

        run = services.execute_run(run.pk, progress=progress)
        if run.status == "failed":
            raise CommandError(f"{target.key}: the run failed: {run.error}")
        self.stdout.write(f"\nstatus: {run.status} in {run.duration_seconds or 0:.2f} s")
        self.stdout.write(f"summary: {run.summary}")
        if run.impact.get("text"):
            self.stdout.write(f"impact: {run.impact['text']}")
        self.stdout.write("\nranking:")
        if not run.ranking:
            self.stdout.write("  (nothing to rank: no metrics)")
        for position, entry in enumerate(run.ranking[:10], start=1):
            self.stdout.write(f"  {position:>2}. {entry['service']:<20} confidence {entry['confidence']:.2f}"
                              f"  score {entry['score']:g}  top metric {entry['top_metric'] or '—'}")
        hypotheses = list(target.hypotheses.order_by("rank", "id"))
        if hypotheses:
            self.stdout.write("\nhypotheses:")
            for h in hypotheses:
                self.stdout.write(f"  {h.rank:>2}. [{h.status}] {h.title} ({h.confidence:.2f}) — next: {h.next_step}")
