"""One detection cycle over 1,000 rules / 10,000 series against a real Prometheus.

    .venv/bin/python bench/detect_cycle.py [--rules 1000] [--series-per-rule 10] [--cycles 3] [--workers 4]
                                           [--warmup 1] [--anomaly-share 0.2] [--history-step 10] [--profile]

A small exporter serves the series and a real Prometheus scrapes it (every 5 s); before Prometheus
starts, the last hour of every series is backfilled into its TSDB (`promtool tsdb create-blocks-from
openmetrics`, one sample every --history-step seconds, the same labels the scrape gives), so an anomaly
rule's range query gets a full baseline, as it would on a Prometheus that has been running.
Every series is 0.1 or 0.95 plus a little noise; 1 % sit at 0.95 (above the 0.9 threshold) and another
1 % jump from 0.1 to 0.3 now (an anomaly, below the threshold).

Three sets of 1,000 rules over the same 10,000 series (10 per rule) are timed in the same run, one set
enabled at a time:

    threshold  every rule a threshold rule (`> 0.9`, instant query): the old mode of this bench
    mixed      --anomaly-share of the rules anomaly rules, the rest threshold rules
    anomaly    every rule an anomaly rule

Anomaly rules mirror the seeded ones (`seed_detection_rules`): method "ensemble" (the product detector),
baseline window 3,600 s, evaluation interval 10 s, so a range query of 361 points per series.
The default share, 0.2, is a guess at a real rule book (mostly thresholds); the seeded demo has 2
anomaly rules among its 5 Prometheus rules (0.4). The all-anomaly run bounds any mix.

Each set is dispatched the way beat does it (batches of DETECTION_BATCH_SIZE rules per Celery task),
consumed by a real worker (prefork); a cycle is timed from dispatch until every rule of the set has
recorded its evaluation. The same cycle run sequentially in one process is shown for comparison.
The sets run in rounds (one cycle of each, in turn) so that a shared machine's changing load falls on
all three alike; "vs threshold" is the median over the rounds of a set's cycle divided by the threshold
set's cycle of the same round. --warmup untimed rounds come first (worker start-up, first imports;
served workers are warm). `--profile` runs one more sequential all-anomaly cycle under cProfile and
reports where its time went (range-query fetch, of which HTTP, JSON decoding and parsing; detector;
alert state). Figures are medians over the cycles; the last line is one JSON object.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import random
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from common import recreate_database, setup_django

DB_NAME = "rs_bench_cycle"
GOAL_SECONDS = 5.0
SCRAPE_INTERVAL = 5
JOB = "bench"
# Mirrors the seeded anomaly rules ("Request rate anomaly", "Error rate anomaly").
ANOMALY_RULE = dict(anomaly_method="ensemble", baseline_window_seconds=3600, evaluation_interval_seconds=10,
                    for_seconds=30, recovery_hold_seconds=60)
NOISE = 0.005
MODES = ("threshold", "mixed", "anomaly")


def level(k: int) -> float:
    """Series k's usual level: 1 % above the threshold rules' 0.9."""
    return 0.95 if k % 100 == 0 else 0.1


def current(k: int) -> float:
    """Series k's level now: another 1 % (k % 97 == 13, spread over every rule set) has jumped to 0.3,
    below the threshold."""
    return 0.3 if k % 97 == 13 and level(k) < 0.5 else level(k)


def labels(r: int, i: int) -> str:
    return f'rule="r{r:04d}",instance_id="i{i:02d}"'


def serve_series(rules: int, per_rule: int) -> ThreadingHTTPServer:
    keys = [(r, i, r * per_rule + i) for r in range(rules) for i in range(per_rule)]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            rng = random.Random()
            lines = ["# TYPE bench_series gauge"]
            lines += [f"bench_series{{{labels(r, i)}}} {current(k) + rng.uniform(-NOISE, NOISE):.5f}"
                      for r, i, k in keys]
            body = ("\n".join(lines) + "\n").encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def write_history(path: Path, rules: int, per_rule: int, instance: str, end: float, seconds: float,
                  step: float) -> int:
    """OpenMetrics for the last `seconds` before `end` of every series, as Prometheus would have scraped
    them (job and instance labels included, so backfill and scrapes make one series). Returns samples."""
    times = np.arange(end - seconds, end, step)
    stamps = [f"{t:.3f}" for t in times]
    rng = np.random.default_rng(15)
    written = 0
    with open(path, "w") as out:
        out.write("# TYPE bench_series gauge\n")
        for r in range(rules):
            for i in range(per_rule):
                k = r * per_rule + i
                name = f'bench_series{{job="{JOB}",instance="{instance}",{labels(r, i)}}} '
                values = level(k) + rng.uniform(-NOISE, NOISE, times.size)
                out.write("".join(f"{name}{v:.5f} {s}\n" for v, s in zip(values.tolist(), stamps)))
                written += times.size
        out.write("# EOF\n")
    return written


def start_backfilled_prometheus(exporter: str, rules: int, per_rule: int, history: float, step: float):
    """A real Prometheus whose TSDB already holds `history` seconds of the series, scraping `exporter`."""
    from reliability_studio.devtools.prometheus import (PROMETHEUS_BIN, PrometheusHandle, _free_port,
                                                         _wait_ready, _write_config)

    promtool = str(Path(PROMETHEUS_BIN).with_name("promtool"))
    if not Path(promtool).is_file():
        raise SystemExit(f"promtool not found next to {PROMETHEUS_BIN}: the anomaly rules need a backfilled history")
    root = Path(tempfile.mkdtemp(prefix="rs-cycle-prometheus-"))
    data = root / "data"
    data.mkdir()
    source = root / "history.om"
    started = time.perf_counter()
    samples = write_history(source, rules, per_rule, exporter, time.time(), history, step)
    done = subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", str(source), str(data)],
                          capture_output=True, text=True, timeout=1200)
    source.unlink()
    if done.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise SystemExit(f"promtool create-blocks-from failed: {done.stderr.strip()[-500:]}")
    print(f"backfilled {samples} samples ({history:.0f} s every {step:g} s) in "
          f"{time.perf_counter() - started:.0f} s", flush=True)
    port = _free_port()
    config = root / "prometheus.yml"
    _write_config(config, port, [exporter], f"{SCRAPE_INTERVAL}s", JOB, [])
    log_path = root / "prometheus.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [PROMETHEUS_BIN, f"--web.listen-address=127.0.0.1:{port}", f"--storage.tsdb.path={data}",
             f"--config.file={config}", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    handle = PrometheusHandle(f"http://127.0.0.1:{port}", port, root, process, log_path)
    if not _wait_ready(handle, 120):
        tail = handle.log_tail()
        handle.stop()
        raise SystemExit(f"Prometheus did not become ready: {tail[-500:]}")
    return handle


def is_anomaly(r: int, share: float) -> bool:
    """Spread `share` of the rules evenly over the rule numbers."""
    return int((r + 1) * share) > int(r * share)


def profile_breakdown(profile: cProfile.Profile, total: float) -> dict:
    """Cumulative seconds of the parts of a sequential anomaly cycle (under the profiler's overhead)."""
    stats = pstats.Stats(profile)
    parts = {
        "range_query": ("telemetry/prometheus.py", "query_range"),  # all of the fetch, of which:
        "range_query_http": ("telemetry/base.py", "_request"),  # waiting for Prometheus (and requests)
        "range_query_json": ("telemetry/prometheus.py", "_unwrap"),  # JSON decoding
        "range_query_parse": ("telemetry/prometheus.py", "_parse_query"),  # building the series
        "detector": ("detection/anomaly.py", "evaluate_latest_many"),
        "alert_state": ("services/rule_evaluation.py", "apply_observations"),
    }
    out = {"total": round(total, 2)}
    for part, (filename, function) in parts.items():
        # max, not sum: a function calling another of the same name would count twice
        out[part] = round(max([v[3] for (f, _line, name), v in stats.stats.items()
                               if name == function and f.endswith(filename)] or [0.0]), 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--series-per-rule", type=int, default=10)
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4, help="Celery worker processes (prefork concurrency)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed cycles of each set before the timed ones")
    parser.add_argument("--anomaly-share", type=float, default=0.2,
                        help="share of the rules that are anomaly rules in the mixed set (0..1)")
    parser.add_argument("--history-step", type=float, default=10.0,
                        help="seconds between the backfilled samples of the last hour")
    parser.add_argument("--profile", action="store_true",
                        help="profile one more sequential all-anomaly cycle (cProfile) and report where time goes")
    args = parser.parse_args()
    if not 0 <= args.anomaly_share <= 1:
        parser.error("--anomaly-share must be between 0 and 1")
    if args.rules < 1 or args.series_per_rule < 1 or args.cycles < 1 or args.workers < 1 or args.warmup < 0:
        parser.error("--rules, --series-per-rule, --cycles and --workers must be at least 1, --warmup at least 0")
    if not 0 < args.history_step <= 60:
        parser.error("--history-step must be in (0, 60] seconds")
    series_total = args.rules * args.series_per_rule
    load_before = os.getloadavg()

    database_url = recreate_database(DB_NAME)
    setup_django(database_url)
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connections
    from django.utils import timezone

    from detection import services
    from detection.models import Alert, AlertState, DetectionRule, RuleKind
    from detection.tasks import dispatch_due_rules
    from incidents.models import Severity
    from reliability_studio.devtools.servers import CeleryWorker, server_env

    call_command("migrate", verbosity=0)
    exporter = serve_series(args.rules, args.series_per_rule)
    history = ANOMALY_RULE["baseline_window_seconds"] + 300  # the window, and the lookback before it
    prometheus = start_backfilled_prometheus(f"127.0.0.1:{exporter.server_address[1]}", args.rules,
                                             args.series_per_rule, history, args.history_step)
    settings.PROMETHEUS_URL = prometheus.url
    settings.CELERY_TASK_ALWAYS_EAGER = False
    shares = {"threshold": 0.0, "mixed": args.anomaly_share, "anomaly": 1.0}
    rules = []
    for mode in MODES:
        for r in range(args.rules):
            query = f'bench_series{{rule="r{r:04d}"}}'
            if is_anomaly(r, shares[mode]):
                rules.append(DetectionRule(name=f"{mode} r{r:04d}", kind=RuleKind.ANOMALY, query=query,
                                           severity=Severity.MEDIUM, enabled=False, **ANOMALY_RULE))
            else:
                rules.append(DetectionRule(name=f"{mode} r{r:04d}", kind=RuleKind.THRESHOLD, query=query,
                                           comparator=">", threshold=0.9, for_seconds=60,
                                           evaluation_interval_seconds=3600, enabled=False))
    DetectionRule.objects.bulk_create(rules)
    prometheus.wait_for_series('bench_series{rule="r0000"}', timeout=120)
    env = server_env(DB_NAME, PROMETHEUS_URL=prometheus.url)
    settings.CELERY_TASK_DEFAULT_QUEUE = env["CELERY_TASK_DEFAULT_QUEUE"]
    connections.close_all()
    worker = CeleryWorker(env, concurrency=args.workers)
    results = {mode: {"celery": [], "sequential": [], "load": []} for mode in MODES}
    profile = None
    try:
        sets = {mode: DetectionRule.objects.filter(name__startswith=f"{mode} ") for mode in MODES}
        anomaly_rules = {mode: sets[mode].filter(kind=RuleKind.ANOMALY).count() for mode in MODES}
        # Rounds of one cycle of each set, so that the machine's changing load falls on every set alike;
        # untimed warm-up rounds first: worker start-up, each worker process's first imports and
        # connections (a served worker is warm: beat sends it work every second).
        for round_ in range(args.warmup + args.cycles):
            timed = round_ >= args.warmup
            for mode in MODES:
                chosen = sets[mode]
                DetectionRule.objects.exclude(pk__in=chosen).update(enabled=False)
                chosen.update(enabled=True, next_evaluation_at=timezone.now())
                started_at = timezone.now()
                started = time.perf_counter()
                dispatch_due_rules()  # what beat runs: claim the due rules, send them out in batches
                while chosen.filter(last_evaluated_at__lt=started_at).exists() or \
                        chosen.filter(last_evaluated_at__isnull=True).exists():
                    time.sleep(0.05)
                through_celery = time.perf_counter() - started

                started = time.perf_counter()
                services.evaluate_rules(rules=list(chosen.select_related("service")))
                sequential = time.perf_counter() - started
                if timed:
                    results[mode]["celery"].append(through_celery)
                    results[mode]["sequential"].append(sequential)
                    results[mode]["load"].append(os.getloadavg()[0])
                print(f"{mode} ({anomaly_rules[mode]} anomaly rules){'' if timed else ', warm-up'}: "
                      f"{through_celery:.2f}s through Celery, {sequential:.2f}s sequential "
                      f"(load {os.getloadavg()[0]:.1f})", flush=True)
        for mode in MODES:
            chosen = sets[mode]
            results[mode]["anomaly_rules"] = anomaly_rules[mode]
            results[mode]["rules_not_ok"] = chosen.exclude(health="ok").count()
            results[mode]["alerting_series"] = Alert.objects.filter(
                rule__in=chosen, state__in=(AlertState.PENDING, AlertState.FIRING)).count()
        if args.profile:
            chosen = DetectionRule.objects.filter(name__startswith="anomaly ")
            profile = cProfile.Profile()
            rules_now = list(chosen.select_related("service"))
            started = time.perf_counter()
            profile.enable()
            services.evaluate_rules(rules=rules_now)
            profile.disable()
            profiled_seconds = time.perf_counter() - started
    finally:
        worker.stop()
        prometheus.stop()
        exporter.shutdown()
    load_after = os.getloadavg()

    summary = {}
    print(f"\n{args.rules} rules / {series_total} series, {args.workers} worker processes on this machine "
          f"({os.cpu_count()} cores, load average {load_before[0]:.1f} before, {load_after[0]:.1f} after)")
    print(f"{'set':<12} {'anomaly':>8} {'Celery s':>9} {'series/s':>9} {'sequential s':>13} "
          f"{'vs threshold':>13} {'(sequential)':>13}")
    base = results["threshold"]
    for mode in MODES:
        r = results[mode]
        d, s = statistics.median(r["celery"]), statistics.median(r["sequential"])
        # the ratio to the threshold set's cycle of the same round (same load), median over the rounds
        ratio = statistics.median(x / y for x, y in zip(r["celery"], base["celery"]))
        ratio_seq = statistics.median(x / y for x, y in zip(r["sequential"], base["sequential"]))
        summary[mode] = {"anomaly_rules": r["anomaly_rules"], "cycle_seconds": round(d, 2),
                         "sequential_seconds": round(s, 2), "series_per_second": round(series_total / d),
                         "ratio_to_threshold": round(ratio, 2), "sequential_ratio_to_threshold": round(ratio_seq, 2),
                         "rules_not_ok": r["rules_not_ok"], "alerting_series": r["alerting_series"],
                         "cycles_celery": [round(x, 2) for x in r["celery"]],
                         "cycles_sequential": [round(x, 2) for x in r["sequential"]],
                         "load_average": [round(x, 1) for x in r["load"]]}
        print(f"{mode:<12} {r['anomaly_rules']:>8} {d:>9.2f} {series_total / d:>9.0f} {s:>13.2f} "
              f"{ratio:>12.2f}x {ratio_seq:>12.2f}x")
    report = {"rules": args.rules, "series": series_total, "workers": args.workers, "cycles": args.cycles,
              "warmup_cycles": args.warmup, "anomaly_share": args.anomaly_share, "goal_seconds": GOAL_SECONDS,
              "points_per_anomaly_series": ANOMALY_RULE["baseline_window_seconds"]
              // ANOMALY_RULE["evaluation_interval_seconds"] + 1,
              "cycle_seconds": summary["mixed"]["cycle_seconds"],
              "within_goal": {m: summary[m]["cycle_seconds"] <= GOAL_SECONDS for m in MODES},
              "load_average": [round(load_before[0], 1), round(load_after[0], 1)], "cores": os.cpu_count(),
              **summary}
    if profile is not None:
        report["profile_sequential_anomaly"] = profile_breakdown(profile, profiled_seconds)
        text = io.StringIO()
        pstats.Stats(profile, stream=text).sort_stats("cumulative").print_stats(25)
        print("\nsequential all-anomaly cycle under cProfile (top 25 by cumulative time):")
        print(text.getvalue())
        print("where the time went:", report["profile_sequential_anomaly"])
    print(json.dumps(report))


if __name__ == "__main__":
    main()
