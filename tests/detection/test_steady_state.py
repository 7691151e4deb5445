"""Two steady hours of the demo's own traffic open no incident (time compressed: simulated).

Nothing here is restated by hand: the traffic is the demo's (demo/traffic.py: its arrival pacing and
route mix at the demo's default rate, followed through demo/topology.py to every service it
reaches), the scrape interval is deploy/prometheus/prometheus.yml's, and each anomaly rule's query
window, baseline, step, evaluation interval and `for` come from the seeded default rules
(seed_detection_rules.DEFAULT_RULES) and the step rule of detection/evaluation.py. The demo fails no
request unless a fault is injected, so its steady error series are zero. A rule fires when its
condition holds for `for_seconds`; the longest run of anomalous evaluations must stay shorter.
"""
import math
import random
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import yaml

from demo.__main__ import parse_args
from demo.topology import BY_NAME
from demo.traffic import arrival_gaps, choose_route
from detection import evaluation
from detection.anomaly import make_detector
from detection.management.commands.seed_detection_rules import DEFAULT_RULES
from detection.models import RuleKind

ROOT = Path(__file__).resolve().parents[2]
HOUR = 3600.0
START = 1_800_000_000.0
DURATIONS = {"s": 1, "m": 60, "h": 3600}
ANOMALY_RULES = [rule for rule in DEFAULT_RULES if rule["kind"] == RuleKind.ANOMALY]


def _seconds(text: str) -> float:
    return float(text[:-1]) * DURATIONS[text[-1]]


def scrape_interval() -> float:
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    return _seconds(config["global"]["scrape_interval"])


def rate_window(rule: dict) -> float:
    (window,) = set(re.findall(r"\[(\d+[smh])\]", rule["query"]))
    return _seconds(window)


def _requests_per_service(method: str, path: str, service: str = "frontend", counts=None) -> dict[str, int]:
    """How many requests each service serves for one request to `service` (through its calls)."""
    counts = counts if counts is not None else defaultdict(int)
    counts[service] += 1
    route = next(r for r in BY_NAME[service].routes if (r.method, r.path) == (method, path))
    for call in route.calls:
        _requests_per_service(call.method, call.path, call.service, counts)
    return counts


def demo_counters(seconds: float, seed: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Each service's http_requests_total at every scrape, for the demo's generator at its default rate."""
    rps = parse_args([]).rps
    rng = random.Random(seed)
    gaps = arrival_gaps(rps, rng)
    interval = scrape_interval()
    scrapes = START + interval * np.arange(int(seconds / interval))
    per_scrape: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(len(scrapes)))
    fanout = {}
    now = 0.0
    while True:
        now += next(gaps)
        if now >= seconds:
            break
        route = choose_route(rng)
        if route not in fanout:
            fanout[route] = _requests_per_service(*route)
        index = min(len(scrapes) - 1, math.ceil(now / interval))
        for service, n in fanout[route].items():
            per_scrape[service][index] += n
    return scrapes, {service: np.cumsum(counts) for service, counts in per_scrape.items()}


def prometheus_rate(scrapes: np.ndarray, counter: np.ndarray, window: float) -> tuple[np.ndarray, np.ndarray]:
    lag = int(window / scrape_interval())
    return scrapes[lag:], (counter[lag:] - counter[:-lag]) / window


def query_step(rule: dict) -> float:
    return max(rule["evaluation_interval_seconds"], math.ceil(rule["baseline_window_seconds"] / evaluation.MAX_POINTS))


def evaluations_to_fire(rule: dict) -> int:
    # Pending at the first anomalous evaluation, firing once it has held for `for_seconds`.
    return math.floor(rule["for_seconds"] / rule["evaluation_interval_seconds"]) + 1


def longest_anomalous_run(rule: dict, t: np.ndarray, rate: np.ndarray) -> tuple[int, int]:
    step = query_step(rule)
    keep = np.arange(0, len(t), int(step / scrape_interval()))
    t, rate = t[keep], rate[keep]
    points = int(rule["baseline_window_seconds"] / step)
    every = int(rule["evaluation_interval_seconds"] / step)
    detector = make_detector(rule["anomaly_method"])
    runs, current, evaluated = [0], 0, 0
    for end in range(points, len(t), max(every, 1)):
        anomalous = detector.evaluate_latest(t[end - points:end + 1], rate[end - points:end + 1]).anomalous
        current = current + 1 if anomalous else 0
        runs.append(current)
        evaluated += 1
    return max(runs), evaluated


def test_the_rules_and_traffic_read_here_are_the_seeded_and_the_demos():
    assert {r["name"] for r in ANOMALY_RULES} == {"Request rate anomaly", "Error rate anomaly"}
    assert all(rate_window(r) > scrape_interval() for r in ANOMALY_RULES)
    scrapes, counters = demo_counters(600, seed=0)
    assert set(counters) == set(BY_NAME)  # the mix reaches every service of the shop
    rps = parse_args([]).rps
    assert counters["frontend"][-1] == pytest.approx(rps * 600, rel=0.05)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("rule", ANOMALY_RULES, ids=lambda r: r["name"])
def test_a_steady_demo_hour_never_holds_an_anomaly_for_the_rules_for_duration(rule, seed):
    duration = 2 * HOUR + 2 * rate_window(rule)
    scrapes, counters = demo_counters(duration, seed)
    errors = "5.." in rule["query"]  # the steady demo fails nothing: its error counters stay at 0
    for service, counter in sorted(counters.items()):
        t, rate = prometheus_rate(scrapes, np.zeros_like(counter) if errors else counter, rate_window(rule))
        longest, evaluated = longest_anomalous_run(rule, t, rate)
        assert evaluated >= HOUR / rule["evaluation_interval_seconds"] - 1  # an hour of evaluations
        assert longest < evaluations_to_fire(rule), (
            f"{rule['name']} on {service}: anomalous for {longest} consecutive evaluations; it fires after "
            f"{evaluations_to_fire(rule)} (for {rule['for_seconds']} s): the rule would fire on steady traffic")


def test_the_same_simulation_does_catch_a_real_drop():
    rule = next(r for r in ANOMALY_RULES if "5.." not in r["query"])
    scrapes, counters = demo_counters(2 * HOUR, seed=4)
    t, rate = prometheus_rate(scrapes, counters["frontend"], rate_window(rule))
    rate = rate.copy()
    rate[-int(300 / scrape_interval()):] *= 0.5  # traffic halves for the last 5 minutes
    step = int(query_step(rule) / scrape_interval())
    t, rate = t[::step], rate[::step]
    points = int(rule["baseline_window_seconds"] / query_step(rule))
    assert make_detector(rule["anomaly_method"]).evaluate_latest(t[-points - 1:], rate[-points - 1:]).anomalous
