"""Root-cause ranking benchmark: AC@1, AC@3, Avg@5 of investigation.rca.rank_root_causes vs N-Sigma.

    .venv/bin/python bench/rca.py [--data SPEC ...] [--without-topology] [--jobs 2] [--verbose]
    .venv/bin/python bench/rca.py --fit-calibration [--train SPEC ...] [--without-topology]
                                        # default: seed 1; writes calibration.json
    .venv/bin/python bench/rca.py --feedback                            # responder-feedback replay

A SPEC is a directory of cases in ../shared/datasets/rca/FORMAT.md layout (also RCAEval's data.csv;
without truth.json the truth is read from a parent folder named <service>_<fault>, as RCAEval names
them) or `generated:N`, the scenario suites of bench/rca_scenarios.py with seed N generated into a
temporary directory. --data and --train may be given several times; each --data is one row of the
per-suite table. Without --data, the seed-2 suites (never used for tuning) are scored.
--without-topology adds, for every --data, a second row scored with the topology removed (RCAEval
ships none). Printed: the per-suite table (ours, N-Sigma, ECE), per source sub-suite and per fault
type, the calibration's reliability table and expected calibration error over all cases, median
seconds per case and the time of the largest case. The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

import rca_scenarios  # noqa: E402

from investigation.rca import calibration  # noqa: E402
from investigation.rca.case import CaseError, load_case  # noqa: E402
from investigation.rca.feedback import Feedback, FeedbackRecord, evidence_signature  # noqa: E402
from investigation.rca.ranking import rank_root_causes  # noqa: E402

TRAIN_SEED, TEST_SEED = 1, 2


def find_cases(data: Path) -> list[Path]:
    found = {p.parent for name in ("metrics.csv", "data.csv") for p in data.rglob(name)}
    return sorted(p for p in found if (p / "inject_time.txt").is_file())


def read_truth(path: Path, data: Path) -> dict | None:
    if (path / "truth.json").is_file():
        return json.loads((path / "truth.json").read_text())
    for parent in [path, *path.parents]:  # RCAEval: <system>/<service>_<fault>/<repetition>/data.csv
        if parent == data.parent:
            break
        service, sep, fault = parent.name.rpartition("_")
        if sep and service:
            return {"service": service, "fault": fault}
    return None


def nsigma(case) -> list[str]:
    """The N-Sigma baseline: per service max |z| (mean/std before detection) over the window after it."""
    before = case.times < case.detection_time
    after = ~before
    scores = {}
    for s in case.services:
        best = 0.0
        for x in case.series.get(s, {}).values():
            b, a = x[before], x[after]
            b, a = b[np.isfinite(b)], a[np.isfinite(a)]
            if b.size < 2 or a.size == 0:
                continue
            sd = float(np.std(b)) or 1e-9
            best = max(best, float(np.max(np.abs(a - np.mean(b)) / sd)))
        scores[s] = best
    return sorted(case.services, key=lambda s: (-scores[s], s))


def run_case(args) -> dict:
    path, data, feedback, *rest = args
    without_topology = bool(rest and rest[0])
    path, data = Path(path), Path(data)
    truth = read_truth(path, data)
    rel = path.relative_to(data)
    t0 = time.perf_counter()
    try:
        case = load_case(path)
    except CaseError as e:
        return {"case": str(rel), "error": str(e)}
    if without_topology:
        case.edges = []
    t1 = time.perf_counter()
    ranking = rank_root_causes(case, feedback=feedback)
    t2 = time.perf_counter()
    return {
        "case": str(rel), "suite": rel.parts[0] if len(rel.parts) > 1 else data.name,
        "truth": truth, "services": len(case.services), "load_seconds": t1 - t0, "rank_seconds": t2 - t1,
        "ranking": [r.service for r in ranking], "scores": [r.score for r in ranking],
        "signature": evidence_signature(ranking),
        "confidences": calibration.confidences(ranking)[:5],
        "features": calibration.features(ranking),
        "nsigma": nsigma(case),
    }


def run_all(paths, data, jobs, feedback=None, without_topology=False) -> list[dict]:
    work = [(str(p), str(data), feedback, without_topology) for p in paths]
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as ex:
            return list(ex.map(run_case, work, chunksize=2))
    return [run_case(w) for w in work]


def ac(results, key, k) -> float:
    if not results:
        return float("nan")
    return float(np.mean([r["truth"]["service"] in r[key][:k] for r in results]))


def scores(results, key) -> dict:
    return {"ac1": ac(results, key, 1), "ac3": ac(results, key, 3),
            "avg5": float(np.mean([ac(results, key, k) for k in range(1, 6)])) if results else float("nan"),
            "n": len(results)}


def reliability(results, bins=10) -> tuple[list[dict], float]:
    """Predicted confidence of the top entry vs observed AC@1, per bin; expected calibration error."""
    conf = np.array([r["confidences"][0] if r["confidences"] else 0.0 for r in results])
    hit = np.array([r["truth"]["service"] == r["ranking"][0] for r in results], float)
    table, ece = [], 0.0
    edges = np.linspace(0, 1, bins + 1)
    for i in range(bins):
        m = (conf >= edges[i]) & ((conf < edges[i + 1]) if i < bins - 1 else (conf <= 1))
        if m.any():
            table.append({"bin": f"{edges[i]:.1f}-{edges[i + 1]:.1f}", "predicted": float(conf[m].mean()),
                          "observed": float(hit[m].mean()), "n": int(m.sum())})
            ece += m.sum() / len(conf) * abs(conf[m].mean() - hit[m].mean())
    return table, float(ece)


def generated(seed: int, tmp: Path) -> Path:
    out = tmp / f"seed{seed}"
    if not out.exists():
        rca_scenarios.generate(out, seed)
    return out


def resolve(spec, tmp: Path) -> Path:
    """A --data / --train value: a directory, or generated:N (the scenario suites with seed N)."""
    spec = str(spec)
    if spec.startswith("generated:"):
        return generated(int(spec.split(":", 1)[1]), tmp)
    return Path(spec)


def fit_calibration(args, tmp: Path) -> int:
    specs = args.train or [f"generated:{TRAIN_SEED}"]
    results = []
    for spec in specs:
        data = resolve(spec, tmp)
        for without in ([False, True] if args.without_topology else [False]):
            results += [r for r in run_all(find_cases(data), data, args.jobs, without_topology=without)
                        if "error" not in r and r["truth"]]
    model = calibration.fit([r["features"] for r in results],
                            [r["truth"]["service"] == r["ranking"][0] for r in results])
    model["trained_on"] = [str(s) for s in specs] + (["each also without topology"] if args.without_topology else [])
    calibration.save(model)
    print(f"fitted on {len(results)} training cases from {', '.join(map(str, specs))}; wrote {calibration.MODEL_PATH}")
    print(json.dumps({"fitted_on": len(results), "model": model}))
    return 0


def feedback_replay(args, tmp: Path) -> int:
    """Responders confirm or reject the top entry of each training case; do rankings of repeated faults
    (same suite, service and fault kind) in the test set improve?"""
    train = resolve(args.train[0], tmp) if args.train else generated(TRAIN_SEED, tmp)
    test = resolve(args.data[0], tmp) if args.data else generated(TEST_SEED, tmp)
    train_results = [r for r in run_all(find_cases(train), train, args.jobs) if "error" not in r and r["truth"]]
    records = []
    for r in train_results:
        top, true = r["ranking"][0], r["truth"]["service"]
        records.append(FeedbackRecord(top, r["signature"], top == true))
        if top != true:  # the responder names the real cause
            records.append(FeedbackRecord(true, r["signature"], True))
    fb = Feedback(records)
    seen = {(r["suite"], r["truth"]["service"], r["truth"]["fault"]) for r in train_results}
    paths = find_cases(test)
    before = [r for r in run_all(paths, test, args.jobs) if "error" not in r and r["truth"]]
    after = [r for r in run_all(paths, test, args.jobs, fb) if "error" not in r and r["truth"]]
    rep = lambda rs: [r for r in rs if (r["suite"], r["truth"]["service"], r["truth"]["fault"]) in seen]  # noqa
    new = lambda rs: [r for r in rs if (r["suite"], r["truth"]["service"], r["truth"]["fault"]) not in seen]  # noqa
    out = {"records": len(records), "repeated_cases": len(rep(before)), "new_cases": len(new(before)),
           "repeated_before": scores(rep(before), "ranking"), "repeated_after": scores(rep(after), "ranking"),
           "new_before": scores(new(before), "ranking"), "new_after": scores(new(after), "ranking"),
           "all_before": scores(before, "ranking"), "all_after": scores(after, "ranking")}
    print(f"feedback: {len(records)} responder records from {len(train_results)} training cases ({train})")
    print(f"{'test subset':28} {'n':>4} {'AC@1 before':>11} {'after':>6} {'AC@3 before':>11} {'after':>6}")
    for label in ("repeated", "new", "all"):
        b, a = out[f"{label}_before"], out[f"{label}_after"]
        print(f"{label + ' faults':28} {b['n']:>4} {b['ac1']:>11.3f} {a['ac1']:>6.3f} {b['ac3']:>11.3f} {a['ac3']:>6.3f}")
    print(json.dumps(out))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", action="append", help="directory of cases or generated:N; repeatable "
                        "(default: generated:2)")
    parser.add_argument("--train", action="append", help="training cases for --fit-calibration/--feedback, "
                        "directory or generated:N; repeatable (default: generated:1)")
    parser.add_argument("--without-topology", action="store_true",
                        help="also score every --data with its topology removed")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--fit-calibration", action="store_true")
    parser.add_argument("--feedback", action="store_true")
    parser.add_argument("--verbose", action="store_true", help="one line per case")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    specs = args.data or [f"generated:{TEST_SEED}"]
    suites: list[tuple[str, list[dict]]] = []
    errors: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="rca-bench-") as tmpdir:
        tmp = Path(tmpdir)
        if args.fit_calibration:
            return fit_calibration(args, tmp)
        if args.feedback:
            return feedback_replay(args, tmp)
        for spec in specs:
            data = resolve(spec, tmp)
            paths = find_cases(data)
            if not paths:
                print(json.dumps({"error": f"no cases under {data}"}))
                return 1
            label = f"seed {spec.split(':')[1]} (generated)" if str(spec).startswith("generated:") else data.name
            for without in ([False, True] if args.without_topology else [False]):
                rs = run_all(paths, data, args.jobs, without_topology=without)
                errors += [r for r in rs if "error" in r]
                rs = [dict(r, source=label + (" no topology" if without else "")) for r in rs
                      if "error" not in r and r["truth"]]
                suites.append((label + (" no topology" if without else ""), rs))
    results = [r for _, rs in suites for r in rs]
    for r in errors:
        print(f"skip {r['case']}: {r['error']}", file=sys.stderr)
    if not results:
        print(json.dumps({"error": "no scored cases"}))
        return 1
    if args.verbose:
        for r in results:
            mark = "ok " if r["ranking"][0] == r["truth"]["service"] else "MISS"
            print(f"{mark} {r['source'][:18]:18} {r['case']:28} truth={r['truth']['service']:24} "
                  f"ours={r['ranking'][:3]} nsigma={r['nsigma'][:2]} conf={r['confidences'][0]:.2f}")
    print(f"root-cause ranking on {len(results)} cases from {', '.join(map(str, specs))}"
          f"{' (generated, seed 2 - never used for tuning)' if not args.data else ''}")
    print(f"{'suite':44} {'n':>4} | {'AC@1':>5} {'AC@3':>5} {'Avg@5':>5} | {'N-Sigma AC@1':>12} {'AC@3':>5} "
          f"{'Avg@5':>5} | {'ECE':>5}")
    per_suite = {}
    for label, rs in suites:
        if not rs:
            continue
        ours, base = scores(rs, "ranking"), scores(rs, "nsigma")
        ece_s = reliability(rs)[1]
        per_suite[label] = {"n": len(rs), **{k: round(v, 4) for k, v in ours.items() if k != "n"},
                            "nsigma": {k: round(v, 4) for k, v in base.items() if k != "n"}, "ece": round(ece_s, 4)}
        print(f"{label[:44]:44} {len(rs):>4} | {ours['ac1']:>5.3f} {ours['ac3']:>5.3f} {ours['avg5']:>5.3f} | "
              f"{base['ac1']:>12.3f} {base['ac3']:>5.3f} {base['avg5']:>5.3f} | {ece_s:>5.3f}")
    print(f"{'group':44} {'n':>4} | {'AC@1':>5} {'AC@3':>5} {'Avg@5':>5} | {'N-Sigma AC@1':>12} {'AC@3':>5} {'Avg@5':>5}")
    groups: dict[str, list] = {"all": results}
    for r in results:
        label = r["source"] if r["suite"] in r["source"] else f"{r['source']}/{r['suite']}"
        groups.setdefault(f"suite {label}", []).append(r)
    for r in results:
        groups.setdefault(f"fault {r['truth'].get('fault', '?')}", []).append(r)
    figures = {}
    for name, rs in groups.items():
        ours, base = scores(rs, "ranking"), scores(rs, "nsigma")
        figures[name] = {"ours": ours, "nsigma": base}
        print(f"{name[:44]:44} {len(rs):>4} | {ours['ac1']:>5.3f} {ours['ac3']:>5.3f} {ours['avg5']:>5.3f} | "
              f"{base['ac1']:>12.3f} {base['ac3']:>5.3f} {base['avg5']:>5.3f}")
    table, ece = reliability(results)
    print(f"calibration ({'fitted' if calibration.load() else 'NOT FITTED'}): confidence of the top entry "
          "vs observed AC@1, all cases")
    for row in table:
        print(f"  {row['bin']:8} predicted {row['predicted']:.3f} observed {row['observed']:.3f} n={row['n']}")
    print(f"  expected calibration error {ece:.4f}")
    rank_s = [r["rank_seconds"] for r in results]
    largest = max(results, key=lambda r: (r["services"], r["rank_seconds"]))
    print(f"median rank seconds per case {np.median(rank_s):.3f} (load {np.median([r['load_seconds'] for r in results]):.3f}); "
          f"largest case {largest['case']} ({largest['services']} services) {largest['rank_seconds']:.3f} s; "
          f"wall {time.perf_counter() - started:.1f} s")
    print(json.dumps({
        "cases": len(results), "skipped": len(errors),
        "data": [str(s) for s in specs] if len(specs) > 1 else str(specs[0]).replace(f"generated:{TEST_SEED}",
                                                                                   f"generated seed {TEST_SEED}"),
        **{k: round(v, 4) for k, v in figures["all"]["ours"].items() if k != "n"},
        "nsigma": {k: round(v, 4) for k, v in figures["all"]["nsigma"].items() if k != "n"},
        "suites": per_suite,
        "groups": {g: {"n": f["ours"]["n"], **{k: round(v, 4) for k, v in f["ours"].items() if k != "n"},
                       "nsigma": {k: round(v, 4) for k, v in f["nsigma"].items() if k != "n"}}
                   for g, f in figures.items() if g != "all"},
        "ece": round(ece, 4), "reliability": table,
        "median_rank_seconds": round(float(np.median(rank_s)), 4),
        "largest_case_seconds": round(largest["rank_seconds"], 4), "largest_case_services": largest["services"],
        "seconds": round(time.perf_counter() - started, 1),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
