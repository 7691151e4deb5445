"""`manage.py rca CASE_DIR [--json]`: rank the root cause of one case on disk (FORMAT.md layout)."""
from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from investigation.rca import CaseError, confidences, load_case, rank_root_causes


class Command(BaseCommand):
    help = "Rank the services of one root-cause case directory (metrics.csv, inject_time.txt, ...)."

    def add_arguments(self, parser):
        parser.add_argument("case_dir")
        parser.add_argument("--json", action="store_true", help='print {"ranking": [{"service", "score"}, ...]}')

    def handle(self, *args, case_dir, json=False, **options):
        try:
            case = load_case(case_dir)
        except CaseError as e:
            raise CommandError(str(e)) from None
        ranking = rank_root_causes(case)
        conf = confidences(ranking)
        if json:
            self.stdout.write(_json.dumps({"ranking": [
                {"service": r.service, "score": r.score, "confidence": c, "onset": r.onset,
                 "top_metric": r.top_metric} for r, c in zip(ranking, conf)]}))
            return
        self.stdout.write(f"{'#':>2} {'service':28} {'score':>8} {'conf':>5} {'onset':>12}  evidence")
        for i, (r, c) in enumerate(zip(ranking, conf), start=1):
            onset = f"{r.onset - case.detection_time:+.0f}s" if r.onset is not None else "-"
            why = r.top_metric or "-"
            if r.explained_by:
                why += f" (explained by {r.explained_by})"
            self.stdout.write(f"{i:>2} {r.service:28} {r.score:>8.3f} {c:>5.2f} {onset:>12}  {why}")


_json = json
