"""Root-cause ranking on small generated cases (pure functions, no database)."""
import math

import numpy as np
import pytest

from investigation.rca import LogLine, build_case, rank_root_causes

START = 1_700_000_000.0


def make_case(*, edges, faulty, kind="error", step=5.0, minutes=40, late=60.0, seed=0, amplify=None,
              missing=0.0, names=None, load_shift=None, crash_missing=False, logs=None, topology=True):
    """A little simulated system: load flows down the call graph, errors and latency flow up with a
    few seconds of delay and some attenuation; the fault starts at 60 % of the data."""
    rng = np.random.default_rng(seed)
    n = int(minutes * 60 / step)
    t = START + step * np.arange(n)
    start = t[int(n * 0.6)]
    on = (t >= start).astype(float)
    services = list(dict.fromkeys([x for e in edges for x in e] + [faulty]))
    callees = {s: [b for a, b in edges if a == s] for s in services}
    callers = {s: [a for a, b in edges if b == s] for s in services}
    load, order = {}, []
    while len(order) < len(services):  # callers before callees
        for s in services:
            if s not in order and all(c in order for c in callers[s]):
                order.append(s)
    for s in order:
        base = 100.0 if not callers[s] else sum(load[c] for c in callers[s]) * 0.8
        if s == load_shift:
            base = base * (1 + 0.8 * on)
        load[s] = np.broadcast_to(base, (n,)).astype(float)
    own_err = {s: np.full(n, 0.005) for s in services}
    own_lat = {s: 20.0 * (load[s] / load[s][0]) ** 1.5 for s in services}
    if kind == "error":
        own_err[faulty] = own_err[faulty] + 0.2 * on
    elif kind == "latency":
        own_lat[faulty] = own_lat[faulty] + 100.0 * on
    elif kind == "crash":
        own_err[faulty] = np.maximum(own_err[faulty], on)
    err, lat = {}, {}
    for s in reversed(order):
        e, latency = own_err[s].copy(), own_lat[s].copy()
        for c in callees[s]:
            k = int(round(3.0 / step))  # three seconds of propagation delay
            shifted_e = np.concatenate([np.full(k, err[c][0]), err[c][: n - k]]) if k else err[c]
            shifted_l = np.concatenate([np.full(k, lat[c][0]), lat[c][: n - k]]) if k else lat[c]
            gain = (amplify or {}).get((s, c), 0.8)
            e = 1 - (1 - e) * (1 - gain * shifted_e)
            latency = latency + gain * shifted_l
        err[s], lat[s] = np.clip(e, 0, 1), latency
    names = names or {"requests": "requests", "errors": "error-ratio", "latency": "latency-p95"}
    series = {}
    for s in services:
        noise = lambda sd: 1 + rng.normal(0, sd, n)  # noqa: E731
        cols = {names["requests"]: load[s] * noise(0.03), names["errors"]: err[s] + np.abs(rng.normal(0, 0.002, n)),
                names["latency"]: lat[s] * noise(0.05)}
        for m, v in cols.items():
            if missing:
                v[rng.random(n) < missing] = np.nan
            if crash_missing and s == faulty:
                v[on > 0] = np.nan
        series[s] = cols
    return build_case(times=t, series=series, detection_time=start + late, edges=edges if topology else [],
                      logs=logs or []), start


CHAIN = [("frontend", "checkout"), ("checkout", "payment"), ("frontend", "catalog")]
DEMO = [("frontend", "catalog"), ("frontend", "checkout"), ("checkout", "payment"), ("checkout", "database"),
        ("payment", "database")]


def top(case):
    return rank_root_causes(case)[0].service


def test_every_service_once_best_first():
    case, _ = make_case(edges=DEMO, faulty="payment")
    ranking = rank_root_causes(case)
    assert sorted(r.service for r in ranking) == sorted(case.services)
    assert [r.score for r in ranking] == sorted((r.score for r in ranking), reverse=True)
    assert ranking[0].service == "payment"
    assert ranking[0].top_metric == "error-ratio" and ranking[0].signals["metrics"] > 10


def test_root_cause_two_hops_down_beats_callers_with_stronger_symptoms():
    # the front end amplifies the error (retries) so its error ratio is the largest of all
    case, _ = make_case(edges=CHAIN, faulty="payment", amplify={("frontend", "checkout"): 2.5,
                                                              ("checkout", "payment"): 1.0})
    ranking = rank_root_causes(case)
    assert ranking[0].service == "payment"
    by_name = {r.service: r for r in ranking}
    assert by_name["frontend"].signals["metrics"] > by_name["payment"].signals["metrics"]
    assert by_name["checkout"].explained_by in ("payment",)


@pytest.mark.parametrize("late", [0.0, 90.0, 180.0])
def test_late_detection_still_finds_the_onset(late):
    case, start = make_case(edges=DEMO, faulty="database", kind="latency", late=late, step=5.0)
    ranking = rank_root_causes(case)
    assert ranking[0].service == "database"
    assert abs(ranking[0].onset - start) <= 30


def test_callee_of_a_benign_load_shift_does_not_win():
    # frontend sends 80 % more load to catalog (whose latency rises with it); the fault is a payment error
    case, _ = make_case(edges=DEMO, faulty="payment", load_shift="frontend", kind="error")
    ranking = [r.service for r in rank_root_causes(case)]
    assert ranking[0] == "payment"
    assert ranking.index("catalog") > 0


def test_victims_of_a_shared_downstream_rank_below_it():
    case, _ = make_case(edges=DEMO, faulty="database", kind="latency", amplify={("payment", "database"): 2.0})
    ranking = [r.service for r in rank_root_causes(case)]
    assert ranking[0] == "database"


def test_missing_cells_and_a_crashed_service_that_stops_reporting():
    case, _ = make_case(edges=DEMO, faulty="payment", kind="crash", missing=0.05, crash_missing=True, seed=3)
    ranking = rank_root_causes(case)
    assert ranking[0].service == "payment"


@pytest.mark.parametrize("step", [1.0, 60.0])
def test_steps_from_one_second_to_one_minute(step):
    case, _ = make_case(edges=DEMO, faulty="checkout", kind="latency", step=step, minutes=40 if step < 60 else 300)
    assert top(case) == "checkout"


def test_arbitrary_metric_names_and_no_topology():
    names = {"requests": "http.server.calls", "errors": "grpc-failures", "latency": "svc-time-ms"}
    case, _ = make_case(edges=DEMO, faulty="catalog", kind="error", names=names, topology=False)
    ranking = rank_root_causes(case)
    assert ranking[0].service == "catalog" and ranking[0].top_metric == "grpc-failures"


def test_resource_saturation_without_topology_rcaeval_names():
    rng = np.random.default_rng(5)
    n = 900
    t = START + np.arange(n)
    on = (t >= t[600]).astype(float)
    series = {s: {"cpu": 0.3 + rng.normal(0, 0.01, n), "mem": 500 + rng.normal(0, 2, n),
                  "latency-50": 20 + rng.normal(0, 1, n), "workload": 100 + rng.normal(0, 3, n)}
              for s in ("cartservice", "frontend", "redis", "adservice")}
    series["redis"]["cpu"] = series["redis"]["cpu"] + 0.8 * on
    series["cartservice"]["latency-50"] = series["cartservice"]["latency-50"] + 4 * on  # the caller slows a bit
    case = build_case(times=t, series=series, detection_time=float(t[700]))
    assert top(case) == "redis"


def test_code_fault_visible_only_in_logs():
    rng = np.random.default_rng(7)
    t0, t1 = START, START + 40 * 60
    fault = START + 25 * 60
    logs = []
    for s in ("frontend", "catalog", "checkout", "payment", "database"):
        for ts in np.sort(rng.uniform(t0, t1, 400)):
            logs.append(LogLine(float(ts), s, f"handled request id={rng.integers(1e6)} in {rng.integers(300)}ms"))
    for ts in np.sort(rng.uniform(fault, t1, 60)):
        logs.append(LogLine(float(ts), "catalog", f"NullPointerException at CatalogHandler.java:{rng.integers(99)}"))
    logs.sort(key=lambda x: x.time)
    case, _ = make_case(edges=DEMO, faulty="catalog", kind="none", logs=logs)
    case.detection_time = fault + 120
    ranking = rank_root_causes(case)
    assert ranking[0].service == "catalog"
    assert ranking[0].signals["logs"] > 5 and ranking[0].top_metric.startswith("log:")


def test_quiet_case_gives_low_flat_scores():
    case, _ = make_case(edges=DEMO, faulty="payment", kind="none")
    ranking = rank_root_causes(case)
    assert all(math.isfinite(r.score) for r in ranking)
    assert ranking[0].score < 8
