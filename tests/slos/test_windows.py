"""The arithmetic, without Prometheus: burn thresholds (the Workbook's table and its scaling),
budget, forecast and detection time."""
import json
import math
from pathlib import Path

import pytest

from slos import windows

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "slo"


def test_thresholds_for_30_days_are_the_workbook_and_sloth_table():
    table = json.loads((FIXTURES / "mwmbr-windows.json").read_text())["sloth_google_30d"]
    ours = {(row.long, row.short): windows.burn_threshold(row, 30) for row in windows.ALERT_ROWS}
    for expected in table:
        assert ours[(expected["long_window"], expected["short_window"])] == pytest.approx(expected["burn_rate"])
    assert [r.severity for r in windows.ALERT_ROWS] == [t["severity"] for t in table]


def test_thresholds_scale_with_the_window():
    page_fast = windows.ALERT_ROWS[0]
    assert windows.burn_threshold(page_fast, 28) == pytest.approx(13.44)
    assert windows.burn_threshold(page_fast, 7) == pytest.approx(3.36)
    # The meaning is kept: 2 % of the period's budget in one hour at the threshold.
    for days in (7, 28, 30, 90):
        t = windows.burn_threshold(page_fast, days)
        assert t * 3600 / (days * 86400) == pytest.approx(0.02)


def test_budget_of_a_999_slo_is_43_2_minutes_over_30_days():
    state = windows.compute_error_budget(objective=0.999, window_seconds=30 * 86400, bad=5, total=10_000)
    assert state.budget_minutes == pytest.approx(43.2)
    assert state.error_ratio == pytest.approx(0.0005) and state.sli == pytest.approx(0.9995)
    assert state.consumed == pytest.approx(0.5) and state.remaining == pytest.approx(0.5)
    assert state.consumed_minutes == pytest.approx(21.6)


def test_zero_traffic_consumes_nothing_and_has_no_sli():
    state = windows.compute_error_budget(objective=0.999, window_seconds=86400, bad=0, total=0)
    assert state.sli is None and state.consumed == 0 and state.remaining == 1
    assert windows.burn_rate(objective=0.999, bad=0, total=0) == 0


def test_time_to_fire_at_full_outage_is_the_workbooks_52_seconds():
    page_fast = windows.ALERT_ROWS[0]
    t = windows.time_to_fire(burn=1 / 0.001, threshold=windows.burn_threshold(page_fast, 30), long_window_seconds=3600)
    assert t == pytest.approx(51.84)
    assert windows.time_to_fire(burn=14.4, threshold=14.4, long_window_seconds=3600) == math.inf


def test_forecast_and_its_wording():
    assert windows.forecast_seconds(remaining=0.5, burn=0.5, window_seconds=30 * 86400) == pytest.approx(30 * 86400)
    assert windows.forecast_seconds(remaining=0.5, burn=0, window_seconds=86400) is None
    assert windows.forecast_seconds(remaining=-0.1, burn=3, window_seconds=86400) == 0
    assert windows.format_duration(3 * 86400 + 4 * 3600 + 59) == "3 d 4 h"
    assert windows.format_duration(52) == "52 s"


def test_no_data_never_fires_and_both_windows_must_burn():
    assert windows.firing_rows({"1h": 20.0, "5m": None}, 30) == []
    assert windows.firing_rows({"1h": 20.0, "5m": 10.0}, 30) == []
    assert [r.name for r in windows.firing_rows({"1h": 20.0, "5m": 20.0}, 30)] == ["page_fast"]


def test_policy_parsing_names_the_problem():
    assert windows.parse_policy("page_fast=critical, ticket_slow=low") == {"page_fast": "critical", "ticket_slow": "low"}
    with pytest.raises(ValueError, match="unknown alert row"):
        windows.parse_policy({"page_fastest": "critical"})
    with pytest.raises(ValueError, match="unknown severity"):
        windows.parse_policy({"page_fast": "sev1"})
