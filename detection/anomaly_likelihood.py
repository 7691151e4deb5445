"""Anomaly likelihood: how unusual is the recent raw anomaly score *for this series*?

Pure numpy + scipy, no Django. After Numenta's anomaly likelihood (Ahmad, Lavin, Purdy & Agha,
"Unsupervised real-time anomaly detection for streaming data", Neurocomputing 2017, section 4.2;
the post-processing behind "Numenta HTM" on the NAB scoreboard), written from that description:

* the raw score (any detector's, in [0, 1]) is averaged over the last `average` points;
* that short-term average is compared with a normal distribution fitted to the earlier
  short-term averages (mean and standard deviation over the previous `history` points, the
  current one excluded, standard deviation floored at `sd_floor`);
* the likelihood is the normal tail probability of the current average: a series whose raw score
  is often high (a noisy series) needs a much higher score to be unusual than a quiet one.

Returned as ``-log10(tail probability)`` ("surprise": 2 = one in a hundred, 5 = one in 100,000),
which is what thresholds compare against. Every value depends only on points up to and including
its own (cumulative sums over trailing windows; no look-ahead).
"""
from __future__ import annotations

import numpy as np
from scipy import special

LN10 = float(np.log(10.0))


def _padded_cumsum(x: np.ndarray) -> np.ndarray:
    """Cumulative sum along the last axis with a leading 0 (shape (..., n + 1))."""
    return np.concatenate([np.zeros(x.shape[:-1] + (1,)), np.cumsum(x, axis=-1)], axis=-1)


def trailing_mean(x: np.ndarray, length: int) -> np.ndarray:
    """NaN-aware mean of x[..., i-length+1 : i+1] (the point and the length-1 before it), along the
    last axis (one series, or one per row); NaN where there is no finite value."""
    x = np.asarray(x, dtype=float)
    finite = np.isfinite(x)
    c = _padded_cumsum(finite.astype(float))
    s = _padded_cumsum(np.where(finite, x, 0.0))
    hi = np.arange(1, x.shape[-1] + 1)
    lo = np.maximum(hi - int(length), 0)
    count = c[..., hi] - c[..., lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, (s[..., hi] - s[..., lo]) / np.maximum(count, 1), np.nan)


def past_mean_std(x: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """NaN-aware mean, standard deviation and count of x[..., i-length : i] (the point excluded),
    along the last axis.

    Cumulative sums of values shifted by each series' first finite value (a constant, so still
    causal) keep the variance's cancellation error small for series far from zero."""
    x = np.asarray(x, dtype=float)
    finite = np.isfinite(x)
    first = np.argmax(finite, axis=-1)[..., None]
    ref = np.where(finite.any(axis=-1, keepdims=True), np.take_along_axis(x, first, axis=-1), 0.0)
    x0 = np.where(finite, x - ref, 0.0)
    c = _padded_cumsum(finite.astype(float))
    s1 = _padded_cumsum(x0)
    s2 = _padded_cumsum(x0 * x0)
    hi = np.arange(x.shape[-1])
    lo = np.maximum(hi - int(length), 0)
    count = c[..., hi] - c[..., lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        k = np.maximum(count, 1)
        mean = (s1[..., hi] - s1[..., lo]) / k
        var = np.maximum((s2[..., hi] - s2[..., lo]) / k - mean * mean, 0.0)
    ok = count > 0
    return np.where(ok, mean + ref, np.nan), np.where(ok, np.sqrt(var), np.nan), count


def normal_surprise(z: np.ndarray) -> np.ndarray:
    """-log10 of the upper normal tail probability P(Z >= z) (scipy.special.log_ndtr: no underflow)."""
    return -special.log_ndtr(-np.asarray(z, dtype=float)) / LN10


def anomaly_likelihood(
    raw: np.ndarray,
    average: int = 20,
    history: int = 8640,
    min_history: int = 100,
    sd_floor: float = 0.02,
) -> tuple[np.ndarray, np.ndarray]:
    """Surprise (-log10 tail probability) of the short-term average raw score, per point (along
    the last axis: one series, or one per row).

    Returns ``(surprise, established)``; ``established`` is False where fewer than `min_history`
    earlier averages exist (surprise is 0 there). NaN raw scores are skipped by the averages."""
    avg = trailing_mean(raw, average)
    mean, sd, count = past_mean_std(avg, history)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (avg - mean) / np.maximum(np.nan_to_num(sd), sd_floor)
    established = (count >= min_history) & np.isfinite(z)
    surprise = np.where(established, normal_surprise(np.nan_to_num(z)), 0.0)
    return surprise, established
