"""A steady hour of demo traffic opens no incident (time compressed: the hour is simulated).

The series are built the way Prometheus would serve them for the demo shop at 20 requests/s with
a 5 s scrape: Poisson request counts, `rate(...[1m])`, read by the seeded anomaly rules' range
query (1 h baseline, 10 s step, evaluated every 10 s for a second hour). A rule fires only when
its condition holds for `for_seconds` (30 s = 3 consecutive evaluations), so that is what is counted.
"""
import numpy as np
import pytest

from detection.anomaly import make_detector

SCRAPE = 5.0
STEP = 10.0
HOUR = 3600.0


def prometheus_rate(rps: float, seconds: float, seed: int, error_ratio: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    scrapes = int(seconds / SCRAPE)
    # The demo jitters its request pacing: the per-scrape rate wanders by a few percent.
    rates = rps * (1 + 0.05 * rng.standard_normal(scrapes))
    counts = rng.poisson(np.clip(rates, 0, None) * SCRAPE)
    if error_ratio:
        counts = rng.binomial(counts, error_ratio)
    counter = np.cumsum(counts).astype(float)
    t = 1_800_000_000.0 + SCRAPE * np.arange(scrapes)
    window = int(60 / SCRAPE)  # rate(...[1m])
    rate = (counter[window:] - counter[:-window]) / 60.0
    return t[window:], rate


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("series", ["requests", "errors"])
def test_steady_hour_never_holds_an_anomaly_for_the_rule_duration(seed, series):
    t, rate = prometheus_rate(20.0, 2 * HOUR + 60, seed, error_ratio=0.002 if series == "errors" else 0.0)
    step_points = int(STEP / SCRAPE)
    t, rate = t[::step_points], rate[::step_points]  # the range query's 10 s step
    detector = make_detector("ensemble")
    baseline = int(HOUR / STEP)
    verdicts = []
    for end in range(baseline, len(t)):
        verdict = detector.evaluate_latest(t[end - baseline:end + 1], rate[end - baseline:end + 1])
        verdicts.append(verdict.anomalous)
    assert len(verdicts) >= 350  # an hour of evaluations
    longest = max((len(run) for run in "".join("x" if v else "." for v in verdicts).split(".")), default=0)
    assert longest < 3, f"an anomaly held for {longest} evaluations: the rule would fire on steady traffic"


def test_the_same_simulation_does_catch_a_real_drop():
    t, rate = prometheus_rate(20.0, 2 * HOUR, seed=4)
    rate = rate.copy()
    rate[-60:] *= 0.5  # traffic halves for the last 5 minutes
    t, rate = t[::2], rate[::2]
    verdict = make_detector("ensemble").evaluate_latest(t[-361:], rate[-361:])
    assert verdict.anomalous
