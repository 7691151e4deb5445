"""The arithmetic of SLOs, with no Django and no network: budgets, burn rates, burn-alert windows.

Formulas (Google SRE Workbook, "Alerting on SLOs"; the same as Sloth's):
  error budget           B = 1 − objective                       (99.9 % → 0.001 of events)
  error ratio over w     e(w) = bad(w) / total(w)                 (ratio of increase() sums)
  burn rate over w       b(w) = e(w) / B
  budget consumed        e(P) / B over the SLO period P; remaining = 1 − consumed
  as minutes of outage   B × P (43.2 min for 99.9 % over 30 d)
  alert threshold        T = budget fraction × P / long window    (2 % × 720 h / 1 h = 14.4)
  time to fire           T / b × long window  at a constant burn b > T with a full window of history
  time to exhaustion     remaining × P / b
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

DURATION_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
BURN_WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
FORECAST_WINDOW = "1h"  # the "current burn" of the forecast


def seconds(duration: str) -> int:
    """'5m' → 300, '3d' → 259200 (one unit only, as in Prometheus ranges used here)."""
    match = re.fullmatch(r"(\d+)([smhdw])", duration.strip())
    if not match:
        raise ValueError(f"{duration!r} is not a duration like 5m, 6h or 30d")
    return int(match.group(1)) * DURATION_SECONDS[match.group(2)]


@dataclass(frozen=True)
class AlertRow:
    """One multi-window condition: both windows burn faster than the threshold."""

    name: str
    severity: str  # page | ticket
    long: str
    short: str
    budget_fraction: float  # of the period's budget consumed in `long` at the threshold


# The Workbook's table (with Sloth's fourth row, 1d & 2h), for a 30-day period.
ALERT_ROWS = (
    AlertRow("page_fast", "page", "1h", "5m", 0.02),
    AlertRow("page_slow", "page", "6h", "30m", 0.05),
    AlertRow("ticket_fast", "ticket", "1d", "2h", 0.10),
    AlertRow("ticket_slow", "ticket", "3d", "6h", 0.10),
)
ROW_NAMES = tuple(row.name for row in ALERT_ROWS)
SEVERITIES = ("critical", "high", "medium", "low")


def burn_threshold(row: AlertRow, window_days: float) -> float:
    """Burn rate that consumes `row.budget_fraction` of the period's budget within the long window.

    For 30 days: 14.4, 6, 3, 1. Other periods scale (28 d: 13.44, 5.6, 2.8, 0.93; 7 d: 3.36 …),
    so "page when 2 % of the budget goes in an hour" keeps its meaning whatever the window.
    """
    return row.budget_fraction * window_days * 86400 / seconds(row.long)


def firing_rows(burn: dict[str, float | None], window_days: float) -> list[AlertRow]:
    """Rows whose long and short windows both burn above the threshold (no data never fires)."""
    hits = []
    for row in ALERT_ROWS:
        threshold = burn_threshold(row, window_days)
        long, short = burn.get(row.long), burn.get(row.short)
        if long is not None and short is not None and long > threshold and short > threshold:
            hits.append(row)
    return hits


def parse_policy(policy: dict | str) -> dict[str, str]:
    """Error-budget policy: alert row → incident severity. Accepts a dict or 'page_fast=critical,…'."""
    if isinstance(policy, str):
        items = [part.split("=", 1) for part in policy.split(",") if part.strip()]
        if any(len(item) != 2 for item in items):
            raise ValueError("the policy is row=severity pairs, e.g. page_fast=critical,page_slow=high")
        policy = {k.strip(): v.strip() for k, v in items}
    if not isinstance(policy, dict):
        raise ValueError("the policy maps alert rows to severities")
    unknown = sorted(set(policy) - set(ROW_NAMES))
    if unknown:
        raise ValueError(f"unknown alert row(s) {', '.join(unknown)}; rows are {', '.join(ROW_NAMES)}")
    bad = sorted(f"{k}={v}" for k, v in policy.items() if v not in SEVERITIES)
    if bad:
        raise ValueError(f"unknown severity in {', '.join(bad)}; use {', '.join(SEVERITIES)}")
    return dict(policy)


def severity_for(rows: list[AlertRow], policy: dict[str, str]) -> str | None:
    """The most severe incident severity among the firing rows."""
    found = [policy[row.name] for row in rows if row.name in policy]
    return min(found, key=SEVERITIES.index) if found else None


@dataclass(frozen=True)
class BudgetState:
    sli: float | None  # None: no traffic in the window
    error_ratio: float | None
    consumed: float  # fraction of the budget
    remaining: float
    budget_minutes: float
    consumed_minutes: float
    remaining_minutes: float


def compute_error_budget(*, objective: float, window_seconds: float, bad: float, total: float) -> BudgetState:
    """Budget over the window from event counts; `objective` is a ratio (0.999).

    Zero traffic consumes nothing (the SLI is undefined, not 100 %)."""
    budget = 1.0 - objective
    minutes = budget * window_seconds / 60.0
    if total <= 0:
        return BudgetState(None, None, 0.0, 1.0, minutes, 0.0, minutes)
    bad = min(max(bad, 0.0), total)
    ratio = bad / total
    consumed = ratio / budget
    return BudgetState(1.0 - ratio, ratio, consumed, 1.0 - consumed, minutes, consumed * minutes,
                       (1.0 - consumed) * minutes)


def burn_rate(*, objective: float, bad: float, total: float) -> float:
    """Error ratio over the budget; zero traffic burns nothing."""
    if total <= 0:
        return 0.0
    return (min(max(bad, 0.0), total) / total) / (1.0 - objective)


def forecast_seconds(*, remaining: float, burn: float | None, window_seconds: float) -> float | None:
    """Time until the budget is gone at a constant `burn`; 0 when already gone, None when not burning."""
    if remaining <= 0:
        return 0.0
    if burn is None or burn <= 0:
        return None
    return remaining * window_seconds / burn


def time_to_fire(*, burn: float, threshold: float, long_window_seconds: float) -> float:
    """Workbook detection time: a constant burn b crosses T in the long window after T/b of it."""
    if burn <= threshold:
        return math.inf
    return threshold / burn * long_window_seconds


def format_duration(value: float | None) -> str:
    """'3 d 4 h', '5 h 12 min', '52 s'."""
    if value is None:
        return "—"
    if math.isinf(value):
        return "never"
    value = max(0, int(round(value)))
    days, rest = divmod(value, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s" if minutes < 10 and secs else f"{minutes} min"
    return f"{secs} s"
