"""Prometheus recording and alerting rules for SLOs, in the shape Sloth generates.

Three groups per SLO: SLI recordings (`slo:sli_error:ratio_rate<window>` for every burn window
and the period), meta recordings (objective, error budget, burn rates, budget remaining,
`sloth_slo_info`) and two alerts (page, ticket), each the OR of two multi-window conditions.
Labels are Sloth's (`sloth_id`, `sloth_service`, `sloth_slo`, `sloth_window`), so Sloth's Grafana
dashboards read them. One departure: the period SLI is a ratio of increase() sums over the whole
window, not Sloth's average of 5-minute ratios (which weighs quiet hours like busy ones).
"""
from __future__ import annotations

import re

import yaml

from . import promql, windows


class _Literal(str):
    pass


def _literal_representer(dumper, data):
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_Literal, _literal_representer)


def _label_name(name: str) -> str:
    cleaned = re.sub(r"[^a-zA-Z0-9_]", "_", name)
    return cleaned if re.match(r"[a-zA-Z_]", cleaned) else f"_{cleaned}"


def _camel(text: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^a-zA-Z0-9]+", text) if part) or "Slo"


def _ids(slo) -> dict[str, str]:
    return {"sloth_id": slo.slug, "sloth_service": slo.service.slug, "sloth_slo": slo.slug}


def _match(slo) -> str:
    return ", ".join(f'{k}="{v}"' for k, v in _ids(slo).items())


def _format_number(value: float) -> str:
    return f"{value:.12g}"


def slo_rule_groups(slo) -> list[dict]:
    """The three rule groups of one SLO."""
    extra = {_label_name(k): str(v) for k, v in (slo.labels or {}).items()}
    if slo.owner:
        extra.setdefault("owner", slo.owner)
    ids = _ids(slo)
    sli_windows = list(windows.BURN_WINDOWS) + ([slo.window] if slo.window not in windows.BURN_WINDOWS else [])
    recordings = [
        {"record": f"slo:sli_error:ratio_rate{w}", "expr": _Literal(promql.error_ratio_query(slo, w) + "\n"),
         "labels": extra | ids | {"sloth_window": w}}
        for w in sli_windows
    ]
    budget = _format_number(slo.error_budget)
    match = _match(slo)
    meta = [
        {"record": "slo:objective:ratio", "expr": f"vector({_format_number(slo.objective_ratio)})", "labels": extra | ids},
        {"record": "slo:error_budget:ratio", "expr": f"vector(1 - {_format_number(slo.objective_ratio)})",
         "labels": extra | ids},
        {"record": "slo:time_period:days", "expr": f"vector({slo.window_days})", "labels": extra | ids},
        {"record": "slo:current_burn_rate:ratio",
         "expr": _Literal(f"slo:sli_error:ratio_rate5m{{{match}}}\n/ on(sloth_id, sloth_slo, sloth_service) group_left\n"
                          f"slo:error_budget:ratio{{{match}}}\n"),
         "labels": extra | ids},
        {"record": "slo:period_burn_rate:ratio",
         "expr": _Literal(f"slo:sli_error:ratio_rate{slo.window}{{{match}}}\n/ on(sloth_id, sloth_slo, sloth_service) "
                          f"group_left\nslo:error_budget:ratio{{{match}}}\n"),
         "labels": extra | ids},
        {"record": "slo:period_error_budget_remaining:ratio",
         "expr": f"1 - slo:period_burn_rate:ratio{{{match}}}", "labels": extra | ids},
        {"record": "sloth_slo_info", "expr": "vector(1)",
         "labels": extra | ids | {"sloth_mode": "reliability-studio", "sloth_objective": f"{slo.objective:g}",
                                  "sloth_spec": "reliability-studio/v1"}},
    ]
    alerts = []
    for severity in ("page", "ticket"):
        rows = [row for row in windows.ALERT_ROWS if row.severity == severity]
        parts = []
        for row in rows:
            factor = _format_number(windows.burn_threshold(row, slo.window_days))
            parts.append(
                "(\n"
                f"    max(slo:sli_error:ratio_rate{row.short}{{{match}}} > ({factor} * {budget})) without (sloth_window)\n"
                "    and\n"
                f"    max(slo:sli_error:ratio_rate{row.long}{{{match}}} > ({factor} * {budget})) without (sloth_window)\n"
                ")"
            )
        alerts.append({
            "alert": f"{_camel(slo.slug)}ErrorBudgetBurn",
            "expr": _Literal("\nor\n".join(parts) + "\n"),
            "labels": {"sloth_severity": severity, "severity": severity, "slo": slo.slug},
            "annotations": {
                "summary": f"{slo.name} ({slo.service.slug}) is burning its {slo.objective:g} % / {slo.window} error budget too fast",
                "title": f"({severity}) {{{{$labels.sloth_service}}}} {{{{$labels.sloth_slo}}}} SLO error budget burn rate is too fast.",
            },
        })
    prefix = f"sloth-slo-{{}}-{slo.slug}"
    return [
        {"name": prefix.format("sli-recordings"), "rules": recordings},
        {"name": prefix.format("meta-recordings"), "rules": meta},
        {"name": prefix.format("alerts"), "rules": alerts},
    ]


def rules_yaml(slos) -> str:
    """A Prometheus rule file (`groups:`) for the SLOs; passes `promtool check rules`."""
    groups = [group for slo in slos for group in slo_rule_groups(slo)]
    header = "# Generated by Reliability Studio (Sloth-compatible SLO rules). Do not edit.\n"
    return header + yaml.dump({"groups": groups}, Dumper=_Dumper, sort_keys=False, width=200, allow_unicode=True)
