"""The product detector (LikelihoodDetector) and its anomaly-likelihood stage.

Pure functions on synthetic series: no database, nothing read from outside the repository."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from detection import anomaly_likelihood as lk
from detection.anomaly import (
    LIKELIHOOD_DEFAULTS,
    EnsembleDetector,
    LikelihoodDetector,
    default_detector,
    make_detector,
)

STEP = 300.0


def series(n=4000, seed=1, sigma=1.0, level=100.0):
    rng = np.random.default_rng(seed)
    return 1_700_000_000.0 + STEP * np.arange(n), level + sigma * rng.standard_normal(n)


def test_the_product_uses_the_likelihood_detector_with_the_tuned_defaults():
    d = default_detector()
    assert isinstance(d, LikelihoodDetector)
    assert isinstance(make_detector("ensemble"), LikelihoodDetector)  # the rule field's default value
    assert isinstance(make_detector("robust-ensemble"), EnsembleDetector)
    assert (d.threshold, d.average, d.gate) == (
        LIKELIHOOD_DEFAULTS["threshold"], LIKELIHOOD_DEFAULTS["average"], LIKELIHOOD_DEFAULTS["gate"])


@pytest.mark.parametrize("k", [700, 1500, 3000])
def test_a_future_point_never_changes_a_past_score(k):
    t, v = series(seed=11)
    v[1200] += 30  # something for the likelihood to remember
    v[2500:2600] += 5
    d = default_detector()
    before_score, before_alarms = d.score(t, v), d.detect(t, v)
    np.testing.assert_array_equal(d.alarms(d.analyze(t, v)["q"]), before_alarms)  # the bench's tuning path
    rng = np.random.default_rng(k)
    for future in (rng.normal(1e4, 1e3, v.size - k), np.full(v.size - k, np.nan), np.zeros(v.size - k)):
        v2 = v.copy()
        v2[k:] = future
        np.testing.assert_array_equal(d.score(t, v2)[:k], before_score[:k])
        np.testing.assert_array_equal(d.detect(t, v2)[:k], before_alarms[:k])
    # the latest verdict on a prefix is the full-series score at that point
    for i in (k - 1, k // 2):
        assert d.evaluate_latest(t[: i + 1], v[: i + 1]).score == pytest.approx(before_score[i], abs=1e-12)


def test_a_spike_is_flagged_at_its_row():
    t, v = series(seed=2)
    v[3000] += 12
    alarms = np.flatnonzero(default_detector().detect(t, v))
    assert alarms.tolist() == [3000]
    r = default_detector().evaluate_latest(t[:3001], v[:3001])
    assert r.anomalous and r.detail["raw_excess"] > 2 and r.deviation == pytest.approx(v[3000] - r.expected)


def test_a_step_change_is_flagged_once_within_a_few_rows():
    t, v = series(seed=3)
    v[2500:] += 6  # a sustained 6-sigma step
    alarms = np.flatnonzero(default_detector().detect(t, v))
    assert alarms.size == 1 and 2500 <= alarms[0] <= 2505, alarms
    # the current condition (what the rule engine's `for` sees) holds for several evaluations
    scores = default_detector().score(t, v)[2500:2530]
    assert np.sum(scores >= 0.5) >= 5


def test_a_moderate_sustained_shift_is_flagged_by_the_likelihood():
    t, v = series(seed=4)
    v[2500:] += 3.5  # single points rarely pass 5 robust sigmas; the raised average does
    d = default_detector()
    r = d.analyze(t, v)
    first = np.flatnonzero(r["q"] >= 1.0)
    assert first.size and 2500 <= first[0] <= 2540
    assert r["surprise"][first[0]] >= d.threshold or r["excess"][first[0]] >= 1


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_a_noisy_steady_series_is_not_flagged(seed):
    t, v = series(n=6000, seed=seed)
    assert not default_detector().detect(t, v)[400:].any()


def test_a_flat_series_is_not_flagged_and_a_real_jump_on_it_is():
    t = 1_700_000_000.0 + STEP * np.arange(2000)
    v = np.full(2000, 42.0)
    v[1000] = 42.1  # MAD = 0: only the spread floor keeps this from being an infinite z
    d = default_detector()
    assert not d.detect(t, v).any()
    assert d.evaluate_latest(t, v).anomalous is False
    v[1500] = 60.0
    assert np.flatnonzero(d.detect(t, v)).tolist() == [1500]


def test_routine_spikes_stop_alarming_once_they_are_normal_for_the_series():
    """The point of the likelihood stage: a series that spikes all the time needs more to be unusual."""
    t, v = series(n=6000, seed=8)
    v[300::60] += 10  # a 10-sigma spike every 60 rows
    alarms = np.flatnonzero(default_detector().detect(t, v))
    assert alarms.size <= 3 and (alarms < 1500).all(), alarms
    quiet_t, quiet_v = series(n=6000, seed=8)
    quiet_v[4000] += 10
    assert np.flatnonzero(default_detector().detect(quiet_t, quiet_v)).tolist() == [4000]


def test_nan_values_and_time_gaps_are_handled():
    t, v = series(n=3000, seed=9)
    rng = np.random.default_rng(0)
    v[rng.choice(3000, 300, replace=False)] = np.nan
    v[1000:1100] = np.nan  # a stretch of missing data
    t[1500:] += 6 * 3600  # a six-hour gap in time
    spike = 2200
    v[spike] = 125.0
    d = default_detector()
    s = d.score(t, v)
    assert np.all(np.isfinite(s)) and np.all((s >= 0) & (s <= 1))
    assert np.all(s[np.isnan(v)] == 0.0)
    alarms = np.flatnonzero(d.detect(t, v))
    assert spike in alarms and alarms.size <= 2
    v[-1] = np.nan
    r = d.evaluate_latest(t, v)
    assert r.status == "missing" and not r.anomalous
    r = d.evaluate_latest(t[:50], v[:50])
    assert r.status == "insufficient_data" and "not enough data" in r.detail["reason"]


def test_a_short_series_falls_back_to_the_raw_verdict():
    t, v = series(n=95, seed=10)  # past the 72-point warm-up, but fewer than 100 earlier averages
    d = default_detector()
    r = d.evaluate_latest(t, v)
    assert r.status == "ok" and not r.anomalous and r.detail["likelihood_established"] is False
    v[-1] += 20
    r = d.evaluate_latest(t, v)
    assert r.anomalous and r.method.startswith("ensemble:")


def test_likelihood_is_the_normal_tail_of_the_short_term_average():
    rng = np.random.default_rng(12)
    raw = np.clip(rng.normal(0.2, 0.05, 1000), 0, 1)
    raw[800:] = 0.6
    surprise, established = lk.anomaly_likelihood(raw, average=10, history=500, min_history=100, sd_floor=0.0)
    assert not established[:100].any() and established[101:].all()
    # at 805: the average of raw[796..805] against the earlier averages' normal fit, by scipy.stats
    avg = lk.trailing_mean(raw, 10)
    past = avg[805 - 500 : 805]
    expected = -np.log10(stats.norm.sf(avg[805], loc=past.mean(), scale=past.std()))
    assert surprise[805] == pytest.approx(expected, rel=1e-9)
    assert surprise[805] > 5 and np.all(surprise[200:790] < 5)
    # causal: changing the future leaves the past alone
    raw2 = raw.copy()
    raw2[900:] = 0.0
    np.testing.assert_array_equal(lk.anomaly_likelihood(raw2, 10, 500, 100)[0][:900],
                                  lk.anomaly_likelihood(raw, 10, 500, 100)[0][:900])


def test_past_mean_std_is_numerically_sound_far_from_zero():
    rng = np.random.default_rng(13)
    x = 1e9 + rng.standard_normal(5000)  # disk-bytes-like magnitude, unit noise
    mean, sd, count = lk.past_mean_std(x, 300)
    assert count[0] == 0 and np.isnan(mean[0])
    assert mean[4000] == pytest.approx(x[3700:4000].mean(), abs=1e-6)
    assert sd[4000] == pytest.approx(x[3700:4000].std(), rel=1e-6)


def test_the_steady_demo_shape_is_cheap_and_quiet():
    """The rule engine's shape: 361 points (1 h at a 10 s step) of a steady rate."""
    rng = np.random.default_rng(14)
    t = 1_800_000_000.0 + 10.0 * np.arange(361)
    d = default_detector()
    verdicts = [d.evaluate_latest(t, 20 * (1 + 0.05 * rng.standard_normal(361))) for _ in range(50)]
    assert all(r.status == "ok" for r in verdicts)
    assert sum(r.anomalous for r in verdicts) <= 2


def test_many_series_at_once_give_exactly_the_one_by_one_verdicts():
    rng = np.random.default_rng(15)
    t = 1_800_000_000.0 + 10.0 * np.arange(361)
    batch = []
    for i in range(12):
        v = 20 * (1 + 0.05 * rng.standard_normal(361))
        if i == 1:
            v[-1] += 8  # a spike at the latest point
        if i == 2:
            v[-40:] *= 0.5  # a drop
        if i == 3:
            v[rng.choice(360, 60, replace=False)] = np.nan
        if i == 4:
            v[-1] = np.nan  # latest missing
        if i == 5:
            v[:300] = np.nan  # too little history
        if i == 6:
            v = np.full(361, 3.0)  # flat
        batch.append((t, v))
    batch.append((t[:200], batch[0][1][:200]))  # another length: its own group
    long_t, long_v = series(n=3 * 288 + 10, seed=16)  # spans 3 days: the seasonal path may apply
    batch.append((long_t, long_v))
    d = default_detector()
    many = d.evaluate_latest_many(batch)
    one_by_one = [d.evaluate_latest(tt, vv) for tt, vv in batch]
    assert [r.status for r in many] == [r.status for r in one_by_one]
    assert many[1].anomalous and many[2].anomalous and many[4].status == "missing"
    assert many[5].status == "insufficient_data"
    for a, b in zip(many, one_by_one):
        assert (a.anomalous, a.method, a.status) == (b.anomalous, b.method, b.status)
        np.testing.assert_allclose([a.score, a.expected, a.deviation], [b.score, b.expected, b.deviation],
                                   rtol=1e-12, atol=1e-12, equal_nan=True)
        assert a.detail.keys() == b.detail.keys()
        for key, value in a.detail.items():
            if isinstance(value, float):
                np.testing.assert_allclose(value, b.detail[key], rtol=1e-12, atol=1e-12, equal_nan=True)
            else:
                assert value == b.detail[key], key
