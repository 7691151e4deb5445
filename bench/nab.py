"""NAB benchmark of the product's anomaly detector (detection.anomaly.default_detector).

    .venv/bin/python bench/nab.py [--data ../shared/datasets/nab] [--profile standard] [--jobs 2]

Runs the product detector, unchanged (same fixed parameters for every file,
alarms = its own `detect()` with its built-in suppression), over every CSV
under DATA/data, and scores the alarms with the NAB scorer in
bench/nab_scoring.py (windows from DATA/labels/combined_windows.json, 15 %
probation, scaled-sigmoid rewards, NAB distance-weighted false positives,
normalised null = 0 / perfect = 100). The same scorer scores:

* baseline: a naive fixed 3-sigma z-score over the whole file (mean and std of
  the entire series - not causal, sees the future), every |z| > 3 row an alarm;
* zscore-rolling: the product's RollingZScoreDetector (window 288, 3 sigma)
  with the same suppression as the product, for orientation ("windowed
  Gaussian"-like).

Prints a per-file table and totals; the last line is one JSON object.
The datasets folder may be a subset of NAB's 58-file corpus: the output says
how many files were scored; published full-corpus scores are not directly
comparable to a subset score.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from nab_scoring import event_metrics, normalized_score, probation_length, score_file, window_indices  # noqa: E402

from detection.anomaly import RollingZScoreDetector, default_detector  # noqa: E402

PUBLISHED = {"Numenta HTM": 70.5, "Relative Entropy": 54.6, "Windowed Gaussian": 39.6}


def load_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    ts, vals = [], []
    with open(path) as f:
        next(f)
        for line in f:
            a, _, b = line.strip().partition(",")
            if a:
                ts.append(a)
                vals.append(float(b) if b else np.nan)
    return np.array(ts, dtype="datetime64[s]"), np.array(vals, dtype=float)


def naive_baseline(values: np.ndarray) -> np.ndarray:
    """Fixed 3-sigma over the whole series (not causal)."""
    mu, sd = np.nanmean(values), np.nanstd(values)
    if not sd > 0:
        return np.zeros(values.size, dtype=bool)
    return np.nan_to_num(np.abs(values - mu) / sd) > 3.0


def run_file(args):
    rel, path, windows = args
    ts, v = load_csv(Path(path))
    t = ts.astype("datetime64[s]").astype(np.int64).astype(float)
    win = window_indices(ts, [(np.datetime64(a), np.datetime64(b)) for a, b in windows])
    prod = default_detector()
    t0 = time.perf_counter()
    det = prod.detect(t, v)
    secs = time.perf_counter() - t0
    zs = RollingZScoreDetector(window=prod.window, threshold=3.0, suppression=prod.suppression)
    return {
        "file": rel,
        "n": int(v.size),
        "windows": win,
        "product": det,
        "baseline": naive_baseline(v),
        "zscore": zs.detect(t, v),
        "detect_seconds": secs,
        "merge": prod.suppression,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "nab"))
    ap.add_argument("--profile", default="standard")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    args = ap.parse_args()

    started = time.perf_counter()
    data = Path(args.data)
    labels_path = data / "labels" / "combined_windows.json"
    windows = json.loads(labels_path.read_text())
    files = sorted(p for p in (data / "data").rglob("*.csv"))
    work = []
    for p in files:
        rel = p.relative_to(data / "data").as_posix()
        if rel not in windows:
            print(f"skip {rel}: no entry in {labels_path.name}", file=sys.stderr)
            continue
        work.append((rel, str(p), windows[rel]))
    if not work:
        print(json.dumps({"error": f"no labelled CSV under {data / 'data'}"}))
        return 1

    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as ex:
            results = list(ex.map(run_file, work))
    else:
        results = [run_file(w) for w in work]

    scored = {"product": [], "baseline": [], "zscore": []}
    print(f"NAB profile {args.profile!r}; data {data} ({len(results)} files"
          f"{' - a SUBSET of the 58-file NAB corpus' if len(results) < 58 else ''})")
    print(f"{'file':58} {'rows':>6} {'win':>3} | {'product':>7} {'TP':>2} {'FPev':>4} {'FProw':>5} "
          f"| {'baseline':>8} {'TP':>2} {'FProw':>5} | {'zscore':>7}")
    for r in results:
        fs = {k: score_file(r[k], r["windows"], args.profile, merge=r["merge"]) for k in scored}
        for k in scored:
            scored[k].append(fs[k])
        p, b, z = fs["product"], fs["baseline"], fs["zscore"]
        print(f"{r['file']:58} {r['n']:>6} {p.n_windows:>3} | {p.raw:>7.3f} {p.tp_windows:>2} "
              f"{p.fp_events:>4} {p.fp_detections:>5} | {b.raw:>8.3f} {b.tp_windows:>2} "
              f"{b.fp_detections:>5} | {z.raw:>7.3f}")

    totals = {k: normalized_score(v, args.profile) for k, v in scored.items()}
    ev = {k: event_metrics(v) for k, v in scored.items()}
    seconds = time.perf_counter() - started
    print("-" * 110)
    print(f"null raw {sum(f.null for f in scored['product']):.3f}, perfect raw "
          f"{sum(f.n_windows for f in scored['product']):.3f}; probation = "
          f"min(15 % of rows, 750) (e.g. {probation_length(4032)} rows of 4032)")
    for k, label in (("product", "product (ensemble, fixed params)"),
                     ("baseline", "naive 3-sigma whole-series z"),
                     ("zscore", "rolling z-score 288/3σ + suppression")):
        e = ev[k]
        print(f"{label:40} NAB {args.profile} score {totals[k]:7.2f}   events: TP {e['tp']} FN {e['fn']} "
              f"FP {e['fp_events']}  P {e['precision']:.3f} R {e['recall']:.3f} F1 {e['f1']:.3f}")
    print("published full-corpus (58 files, standard): " + ", ".join(f"{k} {v}" for k, v in PUBLISHED.items())
          + " - not directly comparable to a subset")
    print(f"detector time {sum(r['detect_seconds'] for r in results):.2f} s over "
          f"{sum(r['n'] for r in results)} points; wall {seconds:.2f} s")
    print(json.dumps({
        "score": round(totals["product"], 2),
        "baseline_score": round(totals["baseline"], 2),
        "precision": round(ev["product"]["precision"], 4),
        "recall": round(ev["product"]["recall"], 4),
        "f1": round(ev["product"]["f1"], 4),
        "files": len(results),
        "seconds": round(seconds, 2),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
