"""Calibration of ranking confidence on a synthetic set whose accuracy is known."""
import numpy as np

from investigation.rca import RankedService, confidences
from investigation.rca import calibration

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from rca import reliability  # noqa: E402


def synthetic(n, seed):
    """Rankings whose top entry is right with a known probability that grows with the margin."""
    rng = np.random.default_rng(seed)
    rows, hits, truth_p, rankings = [], [], [], []
    for _ in range(n):
        second = rng.uniform(2, 10)
        top = second * rng.uniform(1.0, 4.0)
        ranking = [RankedService("a", top, None, None, {}), RankedService("b", second, None, None, {}),
                   RankedService("c", second * 0.5, None, None, {})]
        f = calibration.features(ranking)
        p = 1 / (1 + np.exp(-(-2.0 + 6.0 * f[1])))  # the true P(top is right)
        rows.append(f)
        hits.append(bool(rng.random() < p))
        truth_p.append(p)
        rankings.append(ranking)
    return rows, hits, np.array(truth_p), rankings


def test_fitted_model_recovers_known_accuracy():
    rows, hits, _, _ = synthetic(3000, 1)
    model = calibration.fit(rows, hits)
    _, _, truth_p, rankings = synthetic(2000, 2)
    predicted = np.array([calibration.top_confidence(r, model) for r in rankings])
    assert np.mean(np.abs(predicted - truth_p)) < 0.03
    results = [{"confidences": [p], "truth": {"service": "a" if hit else "z"}, "ranking": ["a"]}
               for p, hit in zip(predicted, np.random.default_rng(3).random(truth_p.size) < truth_p)]
    _, ece = reliability(results)
    assert ece < 0.05


def test_unfitted_share_is_miscalibrated_on_the_same_set():
    # the naive score share is not a probability: the reliability check must notice
    _, _, truth_p, rankings = synthetic(2000, 2)
    share = np.array([calibration.features(r)[2] for r in rankings])
    assert np.mean(np.abs(share - truth_p)) > 0.05


def test_confidences_sum_to_at_most_one_and_follow_the_ranking():
    ranking = [RankedService(s, v, None, None, {}) for s, v in (("a", 30.0), ("b", 10.0), ("c", 5.0), ("d", 0.0))]
    conf = confidences(ranking)
    assert len(conf) == 4 and sum(conf) <= 1.0 + 1e-6
    assert conf[1] >= conf[2] >= conf[3] == 0.0
    assert confidences([]) == []


def test_committed_model_is_small_and_loadable():
    model = calibration.load()
    assert model is not None and model["fitted_on"] >= 100
    assert calibration.MODEL_PATH.stat().st_size < 4096
