"""Calibrated confidence for a ranking: P(the top entry is the root cause).

A logistic (Platt-style) model over three features of the ranking's scores - the top score, the margin
to the second relative to the top, the top's share of the first five - fitted by
`bench/rca.py --fit-calibration --train generated:1 --train bench/data/demo-recorded --without-topology`
(synthetic seed 1 + the real recorded tuning cases, each with and without topology), stored in
calibration.json next to this module and evaluated on held-out sets (seed 2, bench/data/demo-recorded-test)
by `bench/rca.py` (reliability table + ECE per suite).
The remaining probability mass is spread over the next entries in proportion to their scores, so the
confidences of one ranking sum to at most 1; only the first is individually calibrated.
"""
from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

import numpy as np

MODEL_PATH = Path(__file__).resolve().parent / "calibration.json"
FEATURES = ["log_top", "rel_margin", "share5"]


def features(ranking) -> list[float]:
    s = [max(float(r.score), 0.0) for r in ranking[:5]] + [0.0, 0.0]
    top = s[0]
    return [math.log1p(top), (top - s[1]) / top if top > 0 else 0.0,
            top / sum(s[:5]) if sum(s[:5]) > 0 else 0.0]


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.clip(x, -30, 30)))


def fit(rows: list[list[float]], hits: list[bool], l2: float | None = None) -> dict:
    """Logistic regression (BFGS) with a weak ridge prior: a few features, a few hundred cases."""
    from scipy.optimize import minimize

    x = np.column_stack([np.ones(len(rows)), np.asarray(rows, float)])
    y = np.asarray(hits, float)
    l2 = 1.0 / len(y) if l2 is None else l2

    def loss(w):
        p = _sigmoid(x @ w)
        eps = 1e-12
        return -np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps)) + l2 * np.sum(w[1:] ** 2)

    def grad(w):
        p = _sigmoid(x @ w)
        g = x.T @ (p - y) / len(y)
        g[1:] += 2 * l2 * w[1:]
        return g

    w = minimize(loss, np.zeros(x.shape[1]), jac=grad, method="BFGS").x
    return {"kind": "logistic", "features": FEATURES, "intercept": float(w[0]),
            "coef": [float(v) for v in w[1:]], "fitted_on": len(rows), "train_accuracy": float(y.mean())}


def save(model: dict, path: Path = MODEL_PATH) -> None:
    path.write_text(json.dumps(model, indent=2) + "\n")
    load.cache_clear()


@lru_cache(maxsize=1)
def load(path: Path = MODEL_PATH) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def top_confidence(ranking, model: dict | None = None) -> float:
    model = model or load()
    if not ranking:
        return 0.0
    f = features(ranking)
    if model is None:  # unfitted: the top's share of the first five
        return f[2]
    return float(_sigmoid(model["intercept"] + float(np.dot(model["coef"], f))))


def confidences(ranking, model: dict | None = None) -> list[float]:
    """One confidence per ranked service: the first is P(it is the root cause), calibrated; the rest
    share the remaining mass in proportion to their scores (sum ≤ 1)."""
    if not ranking:
        return []
    p1 = top_confidence(ranking, model)
    rest = [max(float(r.score), 0.0) for r in ranking[1:]]
    total = sum(rest)
    return [round(p1, 4)] + [round((1 - p1) * v / total, 4) if total > 0 else 0.0 for v in rest]
