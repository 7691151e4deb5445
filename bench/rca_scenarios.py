"""Seeded generator of root-cause scenarios in ../shared/datasets/rca/FORMAT.md layout.

    .venv/bin/python bench/rca_scenarios.py --out DIR [--seed N] [--per-kind K]

Three suites: `demo` (the demo shop: frontend, catalog, checkout, payment, database; demo metric names
requests / error-ratio / latency-p95), `boutique` (an Online-Boutique-like 12-service graph) and
`trainticket` (a Train-Ticket-like 32-service graph), the last two with RCAEval metric names (cpu, mem,
latency-50, latency-90, workload, error, net-in, net-out) and, like RCAEval, sometimes no topology.json.

Faults: error, latency, crash, cpu, mem, loss, code (visible only in logs: a new exception template,
metrics barely move) and deploy (a deploy log line, then a latency/error regression). Loads with daily
seasonality and AR(1) noise, propagation to callers with delay and attenuation, missing cells and gaps,
steps from 1 s to 60 s, inject_time.txt 0-180 s after the fault start. Confounders: a noisy innocent
service with bursts, an innocent benign load shift, a caller whose symptom is stronger than the cause's.
Seed 1 is the tuning split, seed 2 the test split.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEMO_EDGES = [("frontend", "catalog"), ("frontend", "checkout"), ("checkout", "payment"),
              ("checkout", "database"), ("payment", "database")]

BOUTIQUE_EDGES = [
    ("frontend", "adservice"), ("frontend", "cartservice"), ("frontend", "productcatalogservice"),
    ("frontend", "currencyservice"), ("frontend", "recommendationservice"), ("frontend", "checkoutservice"),
    ("frontend", "shippingservice"), ("checkoutservice", "cartservice"), ("checkoutservice", "productcatalogservice"),
    ("checkoutservice", "currencyservice"), ("checkoutservice", "shippingservice"), ("checkoutservice", "emailservice"),
    ("checkoutservice", "paymentservice"), ("recommendationservice", "productcatalogservice"),
    ("cartservice", "redis"), ("loadgenerator", "frontend"),
]

_TT = "ts-{}-service"
TRAIN_EDGES = [(a if a == "ts-ui-dashboard" else _TT.format(a), _TT.format(b)) for a, b in [
    ("ts-ui-dashboard", "auth"), ("ts-ui-dashboard", "travel"), ("ts-ui-dashboard", "travel2"),
    ("ts-ui-dashboard", "preserve"), ("ts-ui-dashboard", "preserve-other"), ("ts-ui-dashboard", "order"),
    ("ts-ui-dashboard", "cancel"), ("ts-ui-dashboard", "rebook"), ("ts-ui-dashboard", "travel-plan"),
    ("ts-ui-dashboard", "execute"), ("ts-ui-dashboard", "consign"), ("ts-ui-dashboard", "contacts"),
    ("auth", "user"), ("auth", "verification-code"), ("travel", "ticketinfo"), ("travel", "train"),
    ("travel", "route"), ("travel", "seat"), ("travel2", "ticketinfo"), ("travel2", "seat"),
    ("ticketinfo", "basic"), ("basic", "station"), ("basic", "train"), ("basic", "route"), ("basic", "price"),
    ("seat", "order"), ("seat", "config"), ("preserve", "ticketinfo"), ("preserve", "seat"),
    ("preserve", "order"), ("preserve", "contacts"), ("preserve", "food"), ("preserve", "assurance"),
    ("preserve", "consign"), ("preserve", "security"), ("preserve", "user"), ("preserve", "notification"),
    ("preserve-other", "order-other"), ("preserve-other", "seat"), ("preserve-other", "security"),
    ("preserve-other", "ticketinfo"), ("security", "order"), ("security", "order-other"),
    ("cancel", "order"), ("cancel", "inside-payment"), ("cancel", "notification"), ("cancel", "user"),
    ("inside-payment", "payment"), ("inside-payment", "order"), ("rebook", "order"), ("rebook", "travel"),
    ("rebook", "inside-payment"), ("travel-plan", "route-plan"), ("route-plan", "travel"),
    ("route-plan", "route"), ("execute", "order"), ("consign", "consign-price"), ("food", "station"),
    ("order", "station"), ("order-other", "station"),
]]

SUITES = {
    "demo": dict(edges=DEMO_EDGES, naming="demo",
                 faults=["error", "latency", "crash", "loss", "code", "deploy"], per_kind=8),
    "boutique": dict(edges=BOUTIQUE_EDGES, naming="rcaeval",
                     faults=["error", "latency", "crash", "cpu", "mem", "loss", "code", "deploy"], per_kind=6),
    "trainticket": dict(edges=TRAIN_EDGES, naming="rcaeval",
                        faults=["error", "latency", "crash", "cpu", "mem", "loss", "code", "deploy"], per_kind=5),
}
STEPS = [1, 1, 2, 5, 10, 15, 30, 60]

INFO_TEMPLATES = ["GET /api/{svc}/items/{n} 200 {ms}ms", "handled request id={hex} user={n} in {ms}ms",
                  "cache hit ratio {pct} for key space {svc}", "connection pool size={n} active={m}"]
EXCEPTIONS = ["java.lang.NullPointerException at com.shop.{Svc}Handler.process({Svc}Handler.java:{n})",
              "ValueError: invalid literal for int() with base 10: '{hex}' in {svc}/handlers.py line {n}",
              "panic: runtime error: index out of range [{n}] with length {m} goroutine {hex}",
              "Unhandled exception in {svc}: KeyError '{hex}' while serialising order {n}"]


@dataclass
class Graph:
    services: list[str]
    edges: list[tuple[str, str]]

    def callees(self, s):
        return [b for a, b in self.edges if a == s]

    def callers(self, s):
        return [a for a, b in self.edges if b == s]

    def topo(self):
        """Callers before callees."""
        indeg = {s: 0 for s in self.services}
        for _, b in self.edges:
            indeg[b] += 1
        order, ready = [], [s for s in self.services if indeg[s] == 0]
        while ready:
            s = ready.pop(0)
            order.append(s)
            for c in self.callees(s):
                indeg[c] -= 1
                if indeg[c] == 0:
                    ready.append(c)
        return order


def graph_of(edges) -> Graph:
    services: dict[str, None] = {}
    for a, b in edges:
        services.setdefault(a, None)
        services.setdefault(b, None)
    return Graph(list(services), list(edges))


def ar1(rng, n, sd, phi=0.7):
    e = rng.normal(0, sd * math.sqrt(1 - phi * phi), n)
    out = np.empty(n)
    acc = rng.normal(0, sd)
    for i in range(n):
        acc = phi * acc + e[i]
        out[i] = acc
    return out


def shift(x, k):
    if k <= 0:
        return x
    return np.concatenate([np.full(k, x[0]), x[:-k]])


def ramp(t, start, rise):
    """0 before start, rising linearly to 1 over `rise` seconds."""
    return np.clip((t - start) / max(rise, 1e-9), 0, 1)


def simulate(rng, suite: str, fault: str, index: int) -> tuple[dict, dict]:
    spec = SUITES[suite]
    g = graph_of(spec["edges"])
    step = int(rng.choice(STEPS))
    duration = max(1800, 150 * step)
    n = duration // step
    day_phase = rng.uniform(0, 86400)
    t0 = 1_700_000_000 + int(rng.integers(0, 200)) * 86400 + int(day_phase) // step * step
    t = t0 + step * np.arange(n, dtype=float)
    fault_start = float(t[int(n * rng.uniform(0.55, 0.7))])
    lateness = 0.0 if rng.random() < 0.2 else float(rng.uniform(0, 180))
    lateness = math.floor(lateness / step) * step if step > 1 else lateness
    root = str(rng.choice([s for s in g.services if s != "loadgenerator"]))
    rise = float(rng.uniform(0, 30)) if fault not in ("mem",) else float(rng.uniform(120, 400))
    on = ramp(t, fault_start, rise)
    confounders = []

    fan = {e: rng.uniform(0.3, 1.5) for e in g.edges}
    weight = {e: rng.uniform(0.3, 1.0) for e in g.edges}
    delay = {e: int(round(rng.uniform(0, 8) / step)) for e in g.edges}
    atten = {e: rng.uniform(0.5, 0.95) for e in g.edges}
    season = 1 + 0.3 * np.sin(2 * math.pi * (t - t0 + day_phase) / 86400)

    # -- load (top-down)
    load = {}
    crash = fault == "crash"
    load_shift = None
    if rng.random() < 0.35:
        candidates = [s for s in g.services if s != root and root not in g.callees(s)]
        load_shift = str(rng.choice(candidates))
        confounders.append(f"load-shift:{load_shift}")
    for s in g.topo():
        callers = g.callers(s)
        if not callers:
            base = rng.uniform(20, 200) * season * (1 + ar1(rng, n, 0.03))
        else:
            base = sum(fan[(c, s)] * load[c] for c in callers) * (1 + ar1(rng, n, 0.02))
        if s == load_shift:
            base = base * (1 + rng.uniform(0.3, 1.0) * ramp(t, fault_start + rng.uniform(-120, 60), 30))
        load[s] = base
    if crash:  # callees of the crashed service lose the load it sent them
        for c in g.callees(root):
            load[c] = load[c] - fan[(root, c)] * load[root] * on * 0.9

    # -- own latency / errors / resources, then propagate bottom-up
    lat0 = {s: rng.uniform(5, 60) for s in g.services}
    own_lat = {s: lat0[s] * (1 + 0.15 * (load[s] / np.mean(load[s]) - 1)) for s in g.services}
    own_err = {s: np.full(n, rng.uniform(0, 0.01)) for s in g.services}
    cpu0 = {s: rng.uniform(0.05, 0.5) for s in g.services}
    cpu = {s: cpu0[s] * (0.5 + 0.5 * load[s] / np.mean(load[s])) for s in g.services}
    mem = {s: rng.uniform(100, 800) * (1 + 0.02 * np.sin(np.arange(n) / n * 6)) for s in g.services}
    net_factor = {s: 1.0 for s in g.services}
    logs_new: list[tuple[str, str, float, np.ndarray]] = []  # (service, template, rate/s, mask)
    mag = rng.uniform(0.5, 1.5)  # fault severity
    if fault == "error":
        own_err[root] = own_err[root] + mag * rng.uniform(0.05, 0.4) * on
        logs_new.append((root, "ERROR failed to process request: internal error code={n}", 0.5, on))
    elif fault == "latency":
        own_lat[root] = own_lat[root] + mag * lat0[root] * rng.uniform(1, 6) * on
    elif fault == "cpu":
        cpu[root] = cpu[root] + mag * rng.uniform(0.5, 2.0) * on
        own_lat[root] = own_lat[root] * (1 + mag * rng.uniform(0.2, 1.5) * on)
    elif fault == "mem":
        mem[root] = mem[root] * (1 + mag * rng.uniform(0.3, 1.5) * on)
        own_lat[root] = own_lat[root] * (1 + mag * rng.uniform(0.0, 0.6) * on)
        if rng.random() < 0.3:
            own_err[root] = own_err[root] + 0.02 * on
    elif fault == "loss":
        p = mag * rng.uniform(0.1, 0.4)
        net_factor[root] = 1 - p * 0.5 * on
        own_lat[root] = own_lat[root] + lat0[root] * rng.uniform(0.2, 1.0) * on * mag
        own_err[root] = own_err[root] + p * 0.15 * on
    elif fault == "code":
        own_err[root] = own_err[root] + rng.uniform(0.0, 0.004) * on
        tpl = str(rng.choice(EXCEPTIONS))
        logs_new.append((root, tpl, rng.uniform(0.1, 0.6), on))
    elif fault == "deploy":
        logs_new.append((root, "Deployment rollout: started version v{n}.{m}.0 image registry/{svc}:{hex}", -1,
                         on))
        own_lat[root] = own_lat[root] * (1 + mag * rng.uniform(0.3, 2.0) * on)
        own_err[root] = own_err[root] + mag * rng.uniform(0.0, 0.1) * on
        logs_new.append((root, "WARN slow query detected on handler {svc} took {ms}ms", 0.3, on))
    if crash:
        own_err[root] = np.maximum(own_err[root], 1.0 * on)

    strong_caller = None
    callers_of_root = g.callers(root)
    if callers_of_root and fault in ("latency", "error", "loss", "cpu") and rng.random() < 0.4:
        strong_caller = str(rng.choice(callers_of_root))
        fan[(strong_caller, root)] = 3.0
        weight[(strong_caller, root)] = 1.0
        confounders.append(f"strong-caller:{strong_caller}")

    lat, err = {}, {}
    for s in reversed(g.topo()):
        total_lat = own_lat[s].copy()
        ok = 1 - np.clip(own_err[s], 0, 1)
        for c in g.callees(s):
            e = (s, c)
            total_lat = total_lat + fan[e] * weight[e] * shift(lat[c], delay[e])
            if fault == "loss" and c == root:  # the caller sees timeouts/retransmits
                total_lat = total_lat + (1 - shift(net_factor[root], delay[e])) * rng.uniform(100, 400)
            ok = ok * (1 - atten[e] * min(1.0, fan[e]) * shift(err[c], delay[e]))
        lat[s], err[s] = total_lat, 1 - ok

    noisy = None
    if rng.random() < 0.35:
        noisy = str(rng.choice([s for s in g.services if s != root]))
        confounders.append(f"noisy:{noisy}")

    # -- observe
    naming = spec["naming"]
    columns: dict[str, np.ndarray] = {}
    missing_crash = crash and rng.random() < 0.6
    for s in g.services:
        k = 3.0 if s == noisy else 1.0
        if s == root and strong_caller:
            k = 2.0
        noise = lambda sd: 1 + ar1(rng, n, sd * k)  # noqa: E731
        req = load[s] * (1 - (on if (crash and s == root) else 0)) * noise(0.03)
        e_ratio = np.clip(err[s] + np.abs(rng.normal(0, 0.002 * k, n)), 0, 1)
        l50 = lat[s] * noise(0.05)
        l90 = lat[s] * (1.8 + 0.3 * rng.random()) * noise(0.08)
        if s == noisy:  # bursts, before and after the fault
            for _ in range(int(rng.integers(2, 5))):
                b0 = int(rng.integers(0, n - 5))
                blen = max(2, int(rng.uniform(20, 90) / step))
                factor = rng.uniform(1.5, 3.0)
                l50[b0:b0 + blen] *= factor
                l90[b0:b0 + blen] *= factor
            b0 = int(np.searchsorted(t, fault_start + rng.uniform(-60, 200)))
            if b0 < n - 2:
                blen = max(2, int(rng.uniform(30, 120) / step))
                l90[b0:b0 + blen] *= rng.uniform(2, 4)
                l50[b0:b0 + blen] *= rng.uniform(1.5, 3)
        if naming == "demo":
            cols = {"requests": req, "error-ratio": e_ratio, "latency-p95": l90 * 1.1}
        else:
            c = cpu[s] * noise(0.05)
            m = mem[s] * noise(0.01)
            if crash and s == root:
                c = c * (1 - on)
                m = m * (1 - 0.95 * on)
            cols = {"cpu": c, "mem": m, "latency-50": l50, "latency-90": l90, "workload": req,
                    "error": e_ratio * req, "net-in": req * 1.2 * net_factor[s] * noise(0.04),
                    "net-out": req * 3.0 * net_factor[s] * noise(0.04)}
            if s == "redis":
                cols.pop("latency-50"), cols.pop("latency-90"), cols.pop("error")
            if s == "loadgenerator":
                cols = {"cpu": c, "mem": m, "net-out": cols["net-out"]}
        for name, values in cols.items():
            v = values.astype(float).copy()
            if missing_crash and s == root:
                v[on >= 1] = np.nan
            if rng.random() < 0.3:
                v[rng.random(n) < rng.uniform(0.005, 0.05)] = np.nan
            if rng.random() < 0.05:
                g0 = int(rng.integers(0, n - 10))
                v[g0:g0 + int(rng.integers(2, 10))] = np.nan
            columns[f"{s}_{name}"] = v

    # -- logs
    with_logs = fault in ("code", "deploy") or rng.random() < {"demo": 0.9, "boutique": 0.5, "trainticket": 0.3}[suite]
    logs = []
    if with_logs:
        rate = {"demo": 0.5, "boutique": 0.2, "trainticket": 0.05}[suite]

        def fill(tpl, svc):
            return (tpl.replace("{svc}", svc).replace("{Svc}", svc.title().replace("-", ""))
                    .replace("{n}", str(int(rng.integers(1, 999)))).replace("{m}", str(int(rng.integers(1, 99))))
                    .replace("{ms}", str(int(rng.integers(1, 300)))).replace("{pct}", f"{rng.random():.2f}")
                    .replace("{hex}", f"{int(rng.integers(0, 2**32)):08x}"))

        for s in g.services:
            count = rng.poisson(rate * duration)
            for ts in np.sort(rng.uniform(t[0], t[-1], count)):
                logs.append((float(ts), s, fill(str(rng.choice(INFO_TEMPLATES)), s)))
            # error logs in proportion to the error ratio (callers of a failing service log it too)
            callees = g.callees(s)
            for i in np.flatnonzero(rng.random(n) < np.clip(err[s] - own_err[s], 0, 1) * rate * step * 4):
                if callees:
                    logs.append((float(t[i]), s, fill(f"error calling {rng.choice(callees)}: upstream "
                                                      "returned status 503 after {ms}ms", s)))
        for s, tpl, r, mask in logs_new:
            if r < 0:
                logs.append((fault_start, s, fill(tpl, s)))
                continue
            for i in np.flatnonzero(rng.random(n) < mask * r * step):
                logs.append((float(t[i]) + float(rng.uniform(0, step)), s, fill(tpl, s)))
        logs.sort()

    meta = {"step": step, "fault_start": fault_start, "lateness": lateness, "confounders": confounders,
            "with_topology": suite == "demo" or rng.random() < 0.7, "with_logs": bool(logs)}
    case = {"t": t, "columns": columns, "inject_time": int(round(fault_start + lateness)), "graph": g,
            "logs": logs, "truth": {"service": root, "fault": fault, "suite": suite, **meta}}
    return case, meta


def write_case(directory: Path, case: dict) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    names = list(case["columns"])
    matrix = np.column_stack([case["columns"][c] for c in names])
    with open(directory / "metrics.csv", "w") as f:
        f.write("time," + ",".join(names) + "\n")
        for ts, row in zip(case["t"], matrix):
            f.write(f"{int(ts)}," + ",".join("" if math.isnan(v) else f"{v:.6g}" for v in row) + "\n")
    (directory / "inject_time.txt").write_text(f"{case['inject_time']}\n")
    if case["truth"]["with_topology"]:
        g = case["graph"]
        (directory / "topology.json").write_text(json.dumps({"services": g.services, "edges": g.edges}))
    if case["logs"]:
        with open(directory / "logs.jsonl", "w") as f:
            for ts, s, line in case["logs"]:
                f.write(json.dumps({"time": round(ts, 3), "service": s, "line": line}) + "\n")
    (directory / "truth.json").write_text(json.dumps(case["truth"]))


def generate(out: Path, seed: int, per_kind: int | None = None) -> list[Path]:
    """Write every suite's cases under `out/<suite>/<case-id>/`; returns the case directories."""
    paths = []
    for s_index, (suite, spec) in enumerate(SUITES.items()):
        k = per_kind or spec["per_kind"]
        for f_index, fault in enumerate(spec["faults"]):
            for i in range(k):
                rng = np.random.default_rng([seed, s_index, f_index, i])
                case, _ = simulate(rng, suite, fault, i)
                path = out / suite / f"{fault}-{i:02d}"
                write_case(path, case)
                paths.append(path)
    return paths


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--per-kind", type=int, default=None, help="cases per suite and fault kind")
    args = parser.parse_args(argv)
    paths = generate(args.out, args.seed, args.per_kind)
    print(json.dumps({"cases": len(paths), "out": str(args.out), "seed": args.seed}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
