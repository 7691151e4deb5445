"""Anomaly detectors (detection/anomaly.py) and the NAB scorer (bench/nab_scoring.py).

No database: plain functions on synthetic series with known anomalies."""
from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from detection.anomaly import (
    AnomalyResult,
    Detector,
    EnsembleDetector,
    LikelihoodDetector,
    RobustMADDetector,
    RollingZScoreDetector,
    SeasonalDetector,
    default_detector,
    make_detector,
    sampling_interval,
)

_spec = importlib.util.spec_from_file_location(
    "nab_scoring", Path(__file__).resolve().parents[2] / "bench" / "nab_scoring.py"
)
nab = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("nab_scoring", nab)
_spec.loader.exec_module(nab)

STEP = 300.0  # 5-minute samples
ALL = [RollingZScoreDetector, RobustMADDetector, SeasonalDetector, EnsembleDetector, LikelihoodDetector]


def noisy(n=1000, level=100.0, sigma=1.0, seed=1):
    rng = np.random.default_rng(seed)
    t = 1_700_000_000.0 + STEP * np.arange(n)
    return t, level + sigma * rng.standard_normal(n)


# ---------------------------------------------------------------- detectors


@pytest.mark.parametrize("cls", ALL)
def test_spike_is_detected_and_nothing_else(cls):
    t, v = noisy()
    v[700] += 15  # 15 sigma
    det = cls().detect(t, v)
    score = cls().score(t, v)
    assert det[700]
    assert score[700] >= 0.5
    assert np.all((score >= 0) & (score <= 1))
    if cls is not RollingZScoreDetector:  # 5-sigma robust detectors: no false alarm on N(0,1)
        assert set(np.flatnonzero(det)) == {700}


def test_large_level_shift_alarms_once():
    t, v = noisy()
    v[600:] += 8
    det = default_detector().detect(t, v)
    alarms = np.flatnonzero(det)
    assert alarms.size == 1 and 600 <= alarms[0] <= 602  # hysteresis: one alarm, not one per point
    # ... while the raw score stays high for a while (the rule engine's state machine sees it)
    assert np.mean(default_detector().score(t, v)[600:700] >= 0.5) > 0.5


def test_moderate_level_shift_is_caught_by_the_change_component():
    t, v = noisy(seed=3)
    v[600:] += 4.5  # a sustained 4.5-sigma shift: single points only sometimes pass 5 sigma
    shift_only = EnsembleDetector(threshold=1e9)  # point component disabled
    hits = np.flatnonzero(shift_only.detect(t, v))
    assert hits.size == 1 and 600 <= hits[0] <= 608
    r = shift_only.evaluate_latest(t[: hits[0] + 1], v[: hits[0] + 1])
    assert r.anomalous and r.method == "ensemble:shift"
    # the same detector without the shift: a single 4.5-sigma point alone does not alarm
    t2, v2 = noisy(seed=3)
    v2[600] += 4.5
    assert not shift_only.detect(t2, v2).any()


def seasonal_series(days=10, seed=2):
    rng = np.random.default_rng(seed)
    n = days * 288
    t = 1_700_006_400.0 + STEP * np.arange(n)  # midnight UTC (1700006400 % 86400 == 0)
    hour = (t % 86400) / 3600
    v = 100 + 50 * np.sin(2 * np.pi * (hour - 9) / 24) + rng.standard_normal(n)  # peak 15:00, trough 03:00
    return t, v


def test_seasonal_spike_at_unusual_hour_but_normal_at_another():
    t, v = seasonal_series()
    day8 = 8 * 288
    at_3am, at_3pm = day8 + 36, day8 + 180
    assert abs(v[at_3pm] - 150) < 5 and abs(v[at_3am] - 50) < 5
    v[at_3am] = 150.0  # the afternoon peak, at 3 a.m.
    seasonal, robust = SeasonalDetector(), RobustMADDetector()
    s = seasonal.score(t, v)
    assert s[at_3am] >= 0.5
    assert s[at_3pm] < 0.5  # 150 at 3 p.m. is normal
    assert robust.score(t, v)[at_3am] < 0.5  # a one-day window sees 50..150 as normal
    r = seasonal.evaluate_latest(t[: at_3am + 1], v[: at_3am + 1])
    assert r.anomalous and r.method == "seasonal-daily"
    assert abs(r.expected - 50) < 5 and r.deviation > 90
    assert default_detector().evaluate_latest(t[: at_3am + 1], v[: at_3am + 1]).anomalous
    # the whole seasonal series without the injected spike: no alarm after warm-up
    t2, v2 = seasonal_series()
    assert not default_detector().detect(t2, v2)[4 * 288 :].any()


def test_seasonal_falls_back_to_robust_when_too_short():
    t, v = seasonal_series(days=2)
    r = SeasonalDetector().evaluate_latest(t, v)
    assert r.status == "ok" and r.method == "robust"


def test_flat_series_tiny_blip_does_not_alarm_but_real_jump_does():
    t = 1_700_000_000.0 + STEP * np.arange(500)
    v = np.full(500, 100.0)
    v[400] = 100.3  # MAD is 0; without the floor this would be an infinite z
    for cls in ALL:
        assert not cls().detect(t, v).any(), cls
        assert cls().score(t, v).max() < 0.5
    v[450] = 130.0
    for cls in ALL:
        assert cls().detect(t, v)[450], cls


def test_constant_series_is_not_anomalous():
    t = 1_700_000_000.0 + STEP * np.arange(300)
    r = default_detector().evaluate_latest(t, np.zeros(300))
    assert r.status == "ok" and not r.anomalous and r.score == 0.0 and r.expected == 0.0


def test_nans_are_skipped():
    t, v = noisy(seed=5)
    rng = np.random.default_rng(0)
    v[rng.choice(1000, 100, replace=False)] = np.nan
    v[800] = 125.0
    for cls in ALL:
        s = cls().score(t, v)
        assert np.all(np.isfinite(s)) and np.all((s >= 0) & (s <= 1))
        assert s[800] >= 0.5
        assert np.all(s[np.isnan(v)] == 0.0)
    v[-1] = np.nan
    r = default_detector().evaluate_latest(t, v)
    assert r.status == "missing" and not r.anomalous


def test_short_series_says_not_enough_data():
    t, v = noisy(n=5)
    for cls in ALL:
        r = cls().evaluate_latest(t, v)
        assert r.status == "insufficient_data" and not r.anomalous and not r.enough_data
        assert "not enough data" in r.detail["reason"]
        assert cls().score(t, v).tolist() == [0.0] * 5
    assert default_detector().evaluate_latest([], []).status == "insufficient_data"
    with pytest.raises(ValueError):
        default_detector().score([1, 2, 3], [1, 2])


def test_irregular_timestamps_gaps_duplicates_and_backward_step():
    t, v = noisy(n=3000, seed=7)
    rng = np.random.default_rng(1)
    t = t + rng.uniform(-30, 30, t.size)
    t[1000:] += 3600  # a one-hour gap
    t[1500] = t[1499]  # duplicate timestamp
    t[2000] = t[1990]  # one backward step
    v[2500] = 130
    assert sampling_interval(t) == pytest.approx(STEP, rel=0.1)
    for cls in ALL:
        assert cls().detect(t, v)[2500], cls


@pytest.mark.parametrize("cls", ALL)
def test_causal_scores_do_not_depend_on_the_future(cls):
    t, v = seasonal_series(days=9, seed=4)  # long enough for the seasonal path
    v[2000] += 40
    k = 2100
    before = cls().score(t, v)
    v2 = v.copy()
    v2[k:] = np.random.default_rng(9).normal(500, 100, v.size - k)
    after = cls().score(t, v2)
    np.testing.assert_array_equal(before[:k], after[:k])
    assert not np.array_equal(before[k:], after[k:])
    # evaluate_latest on a prefix agrees with the full-series score at that point
    for i in (1000, 2000, k - 1):
        assert cls().evaluate_latest(t[: i + 1], v[: i + 1]).score == pytest.approx(before[i], abs=1e-9)


def test_api_surface():
    d = make_detector("robust", window=60, threshold=4)
    assert isinstance(d, Detector) and isinstance(default_detector(), Detector)
    t, v = noisy(n=200)
    r = d.evaluate_latest(t, v)
    assert isinstance(r, AnomalyResult) and r.status == "ok"
    assert set(r.detail) >= {"z", "spread", "threshold", "n_points"}
    assert d.is_anomalous(t, v) is r.anomalous
    with pytest.raises(ValueError):
        make_detector("nope")
    # datetime64 timestamps are accepted too
    ts = np.datetime64("2024-01-01T00:00:00") + np.arange(200) * np.timedelta64(5, "m")
    assert d.evaluate_latest(ts, v).score == pytest.approx(r.score)


# ---------------------------------------------------------------- NAB scorer

N = 1000
WINDOWS = [(300, 399), (700, 799)]  # probation = 150 rows


def det_at(*idx, n=N):
    d = np.zeros(n, dtype=bool)
    d[list(idx)] = True
    return d


def corpus_score(*files):
    return nab.normalized_score(list(files))


def test_scaled_sigmoid_matches_nab_definition():
    assert nab.scaled_sigmoid(-1.0) == pytest.approx(0.98661, abs=1e-5)
    assert nab.scaled_sigmoid(-0.5) == pytest.approx(0.84828, abs=1e-5)
    assert nab.scaled_sigmoid(0.0) == 0.0
    assert nab.scaled_sigmoid(3.0) == -1.0
    assert nab.probation_length(4032) == 604 and nab.probation_length(22695) == 750


def test_perfect_detector_scores_100_and_null_scores_0():
    perfect = nab.score_file(det_at(300, 700), WINDOWS)
    null = nab.score_file(det_at(n=N), WINDOWS)
    assert perfect.raw == pytest.approx(2.0) and null.raw == pytest.approx(-2.0)
    assert corpus_score(perfect) == pytest.approx(100.0)
    assert corpus_score(null) == pytest.approx(0.0)
    assert corpus_score(perfect, null) == pytest.approx(50.0)


def test_detection_in_probation_is_ignored():
    f = nab.score_file(det_at(10, 100, 149), WINDOWS)
    assert f.raw == pytest.approx(-2.0) and f.fp_detections == 0
    assert corpus_score(f) == pytest.approx(0.0)
    # a window entirely inside probation is neither a miss nor a hit
    g = nab.score_file(det_at(n=N), [(50, 100), (300, 399)])
    assert g.n_scored_windows == 1 and g.raw == pytest.approx(-1.0)


def test_early_detection_beats_late_and_only_the_first_counts():
    early = nab.score_file(det_at(305), WINDOWS)
    late = nab.score_file(det_at(390), WINDOWS)
    both = nab.score_file(det_at(305, 390), WINDOWS)
    assert early.raw > late.raw > nab.score_file(det_at(n=N), WINDOWS).raw
    assert both.raw == pytest.approx(early.raw) and both.tp_windows == 1
    mid = nab.score_file(det_at(350), WINDOWS).window_rewards[0]
    assert 0.8 < mid < 0.9  # about sigma(-0.5) / sigma(-1)


def test_false_positive_weights():
    base = nab.score_file(det_at(300, 700), WINDOWS).raw
    fp_before = nab.score_file(det_at(200, 300, 700), WINDOWS).raw - base
    fp_just_after = nab.score_file(det_at(300, 402, 700), WINDOWS).raw - base
    fp_far_after = nab.score_file(det_at(300, 650, 700), WINDOWS).raw - base
    assert fp_before == pytest.approx(-0.11)  # no preceding window: flat A_fp
    assert -0.11 < fp_far_after < fp_just_after < 0  # NAB: cheaper right after a window
    assert fp_far_after == pytest.approx(-0.11, abs=0.001)


def test_event_metrics_merge_nearby_detections():
    f = nab.score_file(det_at(300, 500, 505, 510, 600), WINDOWS, merge=20)
    assert (f.tp_windows, f.fn_windows, f.fp_detections, f.fp_events) == (1, 1, 4, 2)
    m = nab.event_metrics([f])
    assert m["precision"] == pytest.approx(1 / 3) and m["recall"] == pytest.approx(0.5)
    assert m["f1"] == pytest.approx(2 * (1 / 3) * 0.5 / (1 / 3 + 0.5))


def test_window_indices_from_timestamps():
    ts = np.datetime64("2014-01-01T00:00:00") + np.arange(100) * np.timedelta64(5, "m")
    w = nab.window_indices(ts, [(np.datetime64("2014-01-01T01:00:00.000000"),
                                 np.datetime64("2014-01-01T02:00:00"))])
    assert w == [(12, 24)]
    assert math.isnan(nab.normalized_score([]))
