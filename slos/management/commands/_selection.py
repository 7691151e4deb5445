"""Shared by the export commands: pick SLOs by slug or id, or all."""
from django.core.management.base import CommandError

from slos.models import SLO


def select_slos(names: list[str] | None):
    slos = SLO.objects.select_related("service").order_by("service__slug", "name")
    if not names:
        return list(slos)
    found = []
    for name in names:
        slo = slos.filter(slug=name).first() or (slos.filter(pk=int(name)).first() if name.isdigit() else None)
        if slo is None:
            raise CommandError(f"no SLO {name!r} (give a slug or an id)")
        found.append(slo)
    return found


def write(command, text: str, output: str | None) -> None:
    if output and output != "-":
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(text)
        command.stderr.write(f"wrote {output}")
    else:
        command.stdout.write(text, ending="")
