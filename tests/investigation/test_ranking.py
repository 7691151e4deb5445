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


# --- recorded-demo-like cases: 5 s step, Prometheus-style series (requests, error-ratio, latency-p95, up),
# six minutes before the fault and ~70 s after; shapes as recorded from the running demo stack.

def demo_like(*, faulty, kind, topology=True, with_up=True, seed=11, burst=None, load_rise=None,
              extra_ms=300.0):
    """Load enters at the frontend; errors and latency flow up to callers; a crashed service's series
    vanish after ~20 s and its `up` reads 0; a crashed caller silences its callees (requests 0, their
    error ratio and latency have no samples). `burst`: (service, seconds before the fault) of an error
    burst left by an earlier incident inside the lookback."""
    rng = np.random.default_rng(seed)
    step, n_before, n_after = 5.0, 72, 14
    n = n_before + n_after
    t = START + step * np.arange(n)
    fault = t[n_before]
    after = t >= fault
    ramp = np.clip((t - fault) / 25.0, 0, 1)  # Prometheus rate windows make every change a ramp
    services = ["frontend", "catalog", "checkout", "payment", "database"]
    callees = {a: [b for x, b in DEMO if x == a] for a in services}
    callers = {b: [a for a, x in DEMO if x == b] for b in services}
    base_req = {"frontend": 20.0, "catalog": 14.0, "checkout": 14.0, "payment": 6.0, "database": 20.0}
    base_lat = {"frontend": 0.2, "catalog": 0.02, "checkout": 0.1, "payment": 0.075, "database": 0.005}
    own_err = {s: np.zeros(n) for s in services}
    own_lat = {s: np.zeros(n) for s in services}
    dead = {s: np.zeros(n, bool) for s in services}
    if kind == "error":
        own_err[faulty] = 0.4 * ramp
    elif kind == "latency":
        own_lat[faulty] = extra_ms / 1000 * ramp
    elif kind == "crash":
        dead[faulty] = after
        own_err[faulty] = ramp
    # silence flows down from a dead caller
    silent = {s: np.zeros(n, bool) for s in services}
    for s in ["catalog", "checkout", "payment", "database"]:  # callers first
        silent[s] = np.all([dead[c] | silent[c] for c in callers[s]], axis=0) if callers[s] else silent[s]
    err, lat = {}, {}
    for s in ["database", "payment", "catalog", "checkout", "frontend"]:  # callees first
        e, latency = own_err[s].copy(), own_lat[s].copy()
        for c in callees[s]:
            e = 1 - (1 - e) * (1 - 0.6 * err[c])
            latency = latency + lat[c]
        err[s], lat[s] = np.clip(e, 0, 1), latency
    series = {}
    for s in services:
        req = base_req[s] * (1 + rng.normal(0, 0.02, n))
        if load_rise and s == load_rise[0]:
            req = req * (1 + load_rise[1] * ramp)
        req[silent[s]] = 0.0
        er = err[s] + 0 * req
        if burst and s == burst[0]:
            k = n_before - int(burst[1] / step)
            er[k:k + 8] = np.maximum(er[k:k + 8], 0.5)
        la = (base_lat[s] + lat[s]) * (1 + np.abs(rng.normal(0, 0.05, n)))
        la[rng.random(n) < 0.03] *= 4  # p95 under heavy load: occasional spikes
        gone = silent[s] | (dead[s] & (t >= fault + 20))
        er, la = er.copy(), la.copy()
        er[silent[s]] = np.nan
        la[silent[s]] = np.nan
        cols = {"requests": req, "error-ratio": er, "latency-p95": la}
        if dead[s].any():
            for v in cols.values():
                v[gone] = np.nan
        if with_up:
            up = np.ones(n)
            up[dead[s]] = 0.0
            up[rng.random(n) < 0.02] = 0.0  # a missed scrape now and then
            cols["up"] = up
        series[s] = cols
    return build_case(times=t, series=series, detection_time=fault, edges=DEMO if topology else []), fault


@pytest.mark.parametrize("with_up", [True, False])
@pytest.mark.parametrize("topology", [True, False])
def test_vanished_series_rank_the_crashed_service_first(with_up, topology):
    # payment crashes: its series vanish, checkout's error ratio reaches 60 % before that, frontend's too
    case, fault = demo_like(faulty="payment", kind="crash", with_up=with_up, topology=topology)
    ranking = rank_root_causes(case)
    assert ranking[0].service == "payment" and ranking[0].evidence == "missing"
    if topology:
        assert {r.service: r for r in ranking}["checkout"].explained_by == "payment"


def test_up_at_zero_is_decisive_and_dates_the_crash():
    case, fault = demo_like(faulty="database", kind="crash")
    top_entry = rank_root_causes(case)[0]
    assert top_entry.service == "database" and top_entry.top_metric == "up"
    assert abs(top_entry.onset - fault) <= 10  # from `up`, not from when the series vanished (20 s later)


@pytest.mark.parametrize("with_up,topology", [(True, True), (True, False), (False, True), (False, False)])
def test_frontend_crash_that_silences_all_downstream_ranks_the_frontend(with_up, topology):
    # everyone's requests drop to 0 and their latency / error series have no samples - the front end's fault
    case, _ = demo_like(faulty="frontend", kind="crash", with_up=with_up, topology=topology)
    ranking = rank_root_causes(case)
    assert ranking[0].service == "frontend"


def test_a_missed_scrape_is_not_a_crash():
    case, _ = demo_like(faulty="catalog", kind="latency", seed=4)
    ranking = rank_root_causes(case)
    assert ranking[0].service == "catalog"
    assert all(r.evidence != "missing" for r in ranking)


def test_residue_of_an_earlier_incident_before_the_fault_does_not_win():
    # checkout still had an error burst 90 s before this fault (the end of the previous incident)
    case, _ = demo_like(faulty="database", kind="latency", burst=("checkout", 90), extra_ms=200)
    assert top(case) == "database"


def test_a_small_rise_of_own_load_does_not_discount_a_latency_fault():
    case, _ = demo_like(faulty="database", kind="latency", load_rise=("database", 0.08), extra_ms=150)
    assert top(case) == "database"


def test_error_size_from_a_zero_baseline_is_kept_without_topology():
    # every error ratio starts from exactly 0; the cause's is the largest - it must not tie with its callers
    case, _ = demo_like(faulty="payment", kind="error", topology=False)
    ranking = rank_root_causes(case)
    assert ranking[0].service == "payment"
    by = {r.service: r for r in ranking}
    assert by["payment"].signals["metrics"] > by["checkout"].signals["metrics"] > by["frontend"].signals["metrics"]


def test_an_earlier_incident_filling_the_early_baseline_is_not_normal():
    # the database was already slow for most of the early baseline (the previous incident); the recent
    # stretch before this fault is calm - it is the baseline, and the new latency fault stands out
    case, fault = demo_like(faulty="database", kind="latency", extra_ms=700)
    t = case.times
    lat = case.series["database"]["latency-p95"]
    early = (t < fault - 150) & (t >= fault - 300)
    lat[early] = lat[early] + 0.5
    ranking = rank_root_causes(case)
    assert ranking[0].service == "database" and ranking[0].evidence == "latency"


def test_a_callee_whose_strongest_series_is_latency_still_explains_callers_errors():
    # the database both errors and slows down (latency is its top series); callers only error
    case, fault = demo_like(faulty="database", kind="error")
    ramp = np.clip((case.times - fault) / 25.0, 0, 1)
    case.series["database"]["latency-p95"] = case.series["database"]["latency-p95"] + 0.5 * ramp
    noise = np.abs(np.random.default_rng(2).normal(0, 0.05, case.times.size))  # its error ratio is noisy
    case.series["database"]["error-ratio"] = case.series["database"]["error-ratio"] + noise
    ranking = rank_root_causes(case)
    by = {r.service: r for r in ranking}
    assert ranking[0].service == "database" and by["database"].evidence == "latency"
    assert by["checkout"].explained_by in ("database", "payment")
