"""Streaming (causal) anomaly detectors for metric series.

Pure Python + numpy; no Django, no database. The rule engine fetches a series
with a Prometheus range query (timestamps in seconds, float values) and calls
one of the detectors below.

Common contract (:class:`Detector`)
-----------------------------------
* ``score(timestamps, values) -> np.ndarray``: an anomaly score in [0, 1] per
  point, computed **only from data up to and including that point** (no
  look-ahead: changing a future point never changes a past score). A score of
  0.5 is exactly the detector's threshold (``score >= 0.5`` <=> anomalous).
  Points that cannot be scored (missing value, not enough history) get 0.0.
* ``detect(timestamps, values) -> np.ndarray[bool]``: alarm points, i.e.
  ``score >= 0.5`` *and* not within the detector's suppression window after a
  previous alarm (hysteresis for event-style consumers such as the NAB bench).
* ``evaluate_latest(timestamps, values) -> AnomalyResult``: the latest point vs
  its baseline, for the rule engine. ``anomalous`` reflects the *current*
  condition (score >= 0.5) and is **not** suppressed: the rule engine's own
  ``for`` / recovery-hold state machine provides alert hysteresis, and
  suppressing a sustained anomaly here would make alerts flap.
  When the series is too short, ``status == "insufficient_data"`` and
  ``anomalous`` is False; when the latest value is missing, ``status ==
  "missing"``.
* ``is_anomalous(timestamps, values) -> bool``: ``evaluate_latest(...).anomalous``.

Units: every window is a number of *samples* (so it scales with the series'
own sampling interval, e.g. a 288-sample baseline is one day at 5 min and 72
minutes at 15 s); seasonal periods are wall-clock (day, week) because that is
what seasonality is. Timestamps may be irregular, may contain gaps,
duplicates or a backward step; values may contain NaN (missing), which are
skipped in every baseline statistic.

Score mapping: each detector computes a deviation ``z`` in units of its
baseline spread and maps ``e = |z| / threshold`` to ``e**4 / (1 + e**4)``:
0.5 at the threshold, about 0.06 at half of it, about 0.94 at twice it.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import anomaly_likelihood as likelihood

MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution * 1.4826 = sigma
DAY = 86400.0
WEEK = 7 * DAY

__all__ = [
    "AnomalyResult",
    "Detector",
    "RollingZScoreDetector",
    "RobustMADDetector",
    "SeasonalDetector",
    "EnsembleDetector",
    "LikelihoodDetector",
    "LIKELIHOOD_DEFAULTS",
    "default_detector",
    "evaluate_latest_many",
    "sampling_interval",
    "DETECTORS",
    "make_detector",
]


@dataclass(frozen=True)
class AnomalyResult:
    """Verdict on the latest point of a series.

    score      anomaly score in [0, 1] (0.5 = threshold)
    anomalous  score >= 0.5 (and status == "ok")
    expected   baseline value the latest point was compared against (NaN if none)
    deviation  latest value - expected, in the series' units (NaN if none)
    method     which model produced the verdict ("zscore", "robust",
               "seasonal-daily", "seasonal-weekly", "ensemble:<...>")
    detail     extra numbers: z, spread, threshold, n_points, reason, ...
    status     "ok" | "insufficient_data" | "missing"
    """

    score: float
    anomalous: bool
    expected: float
    deviation: float
    method: str
    detail: dict[str, Any] = field(default_factory=dict)
    status: str = "ok"

    @property
    def enough_data(self) -> bool:
        return self.status == "ok"


@runtime_checkable
class Detector(Protocol):
    name: str

    def score(self, timestamps: np.ndarray, values: np.ndarray) -> np.ndarray: ...

    def detect(self, timestamps: np.ndarray, values: np.ndarray) -> np.ndarray: ...

    def evaluate_latest(self, timestamps: np.ndarray, values: np.ndarray) -> AnomalyResult: ...

    def is_anomalous(self, timestamps: np.ndarray, values: np.ndarray) -> bool: ...


# --------------------------------------------------------------------------- helpers


def _as_arrays(timestamps, values) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(timestamps)
    if np.issubdtype(t.dtype, np.datetime64):
        t = t.astype("datetime64[ns]").astype(np.int64) / 1e9
    t = np.asarray(t, dtype=float).ravel()
    v = np.asarray(values, dtype=float).ravel()
    if t.shape != v.shape:
        raise ValueError(f"timestamps and values differ in length: {t.size} != {v.size}")
    v = np.where(np.isfinite(v), v, np.nan)
    return t, v


def sampling_interval(timestamps) -> float:
    """Typical step between samples (median of positive differences), seconds.

    The median ignores gaps, duplicates and a backward step. Returns NaN when
    fewer than two distinct timestamps exist."""
    t = np.asarray(timestamps, dtype=float)
    d = np.diff(t)
    d = d[d > 0]
    return float(np.median(d)) if d.size else float("nan")


def _score_from_excess(e: np.ndarray) -> np.ndarray:
    """Map e = |z| / threshold (>= 0) to [0, 1], 0.5 at e == 1."""
    e = np.nan_to_num(np.abs(e), nan=0.0, posinf=1e6)
    e4 = np.minimum(e, 1e3) ** 4
    return e4 / (1.0 + e4)


def _past_rows(x: np.ndarray, window: int, start: int) -> np.ndarray:
    """Rows r = x[i-window:i] for i in [start, n), NaN-padded on the left (a view)."""
    padded = np.concatenate([np.full(window, np.nan), x])
    return sliding_window_view(padded, window)[start : x.size]


def _row_median(sorted_rows: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Median of rows already sorted with NaN last, `counts` finite values per row."""
    c = np.maximum(counts, 1)
    lo = np.take_along_axis(sorted_rows, ((c - 1) // 2)[:, None], axis=1)[:, 0]
    hi = np.take_along_axis(sorted_rows, (c // 2)[:, None], axis=1)[:, 0]
    med = 0.5 * (lo + hi)
    return np.where(counts > 0, med, np.nan)


def _rolling_median_mad(
    x: np.ndarray, window: int, min_count: int, start: int = 0, chunk: int = 4096, stride: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median, MAD and finite-count of the `window` samples *before* each point
    (the point itself excluded), for points start..n-1. NaN where fewer than
    `min_count` finite samples exist.

    With `stride` > 1 the statistics are re-estimated only at rows 0, stride,
    2*stride, ... of `x` and held until the next such row: point i uses the
    window before row (i // stride) * stride <= i (still only its past), at
    1/stride of the cost."""
    n = x.size
    m = n - start
    med = np.full(m, np.nan)
    mad = np.full(m, np.nan)
    cnt = np.zeros(m, dtype=int)
    if m <= 0:
        return med, mad, cnt
    if stride > 1:
        anchor = (np.arange(start, n) // stride) * stride
        reps, where = np.unique(anchor, return_inverse=True)
        padded = np.concatenate([np.full(window, np.nan), x])
        rows_all = sliding_window_view(padded, window)[reps]
    else:
        rows_all = _past_rows(x, window, start)
        where = None
    k = rows_all.shape[0]
    r_med = np.full(k, np.nan)
    r_mad = np.full(k, np.nan)
    r_cnt = np.zeros(k, dtype=int)
    for a in range(0, k, chunk):
        rows = np.sort(rows_all[a : a + chunk], axis=1)
        c = np.sum(~np.isnan(rows), axis=1)
        md = _row_median(rows, c)
        dev = np.sort(np.abs(rows - md[:, None]), axis=1)
        ma = _row_median(dev, c)
        ok = c >= min_count
        r_med[a : a + chunk] = np.where(ok, md, np.nan)
        r_mad[a : a + chunk] = np.where(ok, ma, np.nan)
        r_cnt[a : a + chunk] = c
    if where is None:
        return r_med, r_mad, r_cnt
    return r_med[where], r_mad[where], r_cnt[where]


def _rolling_mean_std(
    x: np.ndarray, window: int, min_count: int, start: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and (sample) std of the `window` samples before each point (point excluded)."""
    rows = _past_rows(x, window, start)
    c = np.sum(~np.isnan(rows), axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nansum(rows, axis=1) / c
        var = np.nansum((rows - mean[:, None]) ** 2, axis=1) / np.maximum(c - 1, 1)
    ok = c >= min_count
    return np.where(ok, mean, np.nan), np.where(ok, np.sqrt(var), np.nan), c


def _trailing_median(x: np.ndarray, length: int, start: int) -> np.ndarray:
    """Median of x[i-length+1 : i+1] (the point and the length-1 before it), NaN-aware."""
    padded = np.concatenate([np.full(length - 1, np.nan), x])
    rows = np.sort(sliding_window_view(padded, length)[start : x.size], axis=1)
    c = np.sum(~np.isnan(rows), axis=1)
    return _row_median(rows, c)


def _suppress(alarm_candidates: np.ndarray, suppression: int, rearm: int = 0) -> np.ndarray:
    """Hysteresis: one alarm per episode, at most one per `suppression` samples.

    An episode is a run of above-threshold points in which gaps are shorter than
    `rearm` samples; it alarms at its first point unless that point is within
    `suppression` samples after the previous alarm. A sustained anomaly
    therefore alarms once, not once per suppression window."""
    out = np.zeros(alarm_candidates.size, dtype=bool)
    idx = np.flatnonzero(alarm_candidates)
    if suppression <= 0 and rearm <= 0:
        out[idx] = True
        return out
    last_alarm = -(10**12)
    last_hot = -(10**12)
    for i in idx:
        new_episode = i - last_hot > rearm
        if new_episode and i - last_alarm > suppression:
            out[i] = True
            last_alarm = i
        last_hot = i
    return out


@dataclass
class _Analysis:
    """Per-point internals shared by the detectors (arrays cover points start..n-1)."""

    z: np.ndarray  # signed deviation in spreads (NaN = unscorable)
    expected: np.ndarray
    spread: np.ndarray
    method: np.ndarray  # object array of method names
    threshold: float


# --------------------------------------------------------------------------- base


def precheck(detector, v: np.ndarray) -> AnomalyResult | dict:
    """The verdict when the latest point cannot be judged (too little history, a missing latest
    value), else the detail's common part."""
    n = v.size
    n_finite = int(np.sum(~np.isnan(v[:-1]))) if n else 0
    base = {"n_points": n, "n_finite_history": n_finite, "min_history": detector.min_history}
    if n == 0 or n_finite < detector.min_history:
        return AnomalyResult(
            0.0, False, float("nan"), float("nan"), detector.name,
            {**base, "reason": f"not enough data: {n_finite} finite points before the latest, "
                               f"need {detector.min_history}"},
            status="insufficient_data",
        )
    if np.isnan(v[-1]):
        return AnomalyResult(0.0, False, float("nan"), float("nan"), detector.name,
                             {**base, "reason": "latest value is missing (NaN)"}, status="missing")
    return base


class _BaseDetector:
    name = "base"
    #: samples of history needed before the first score (documented per detector)
    min_history: int = 30
    suppression: int = 0
    rearm: int = 0

    def __init__(self, *, min_spread_rel: float = 0.01, min_spread_abs: float = 1e-9, stride: int = 1):
        self.min_spread_rel = float(min_spread_rel)
        self.min_spread_abs = float(min_spread_abs)
        #: robust baselines are re-estimated every `stride` rows (1 = at every point)
        self.stride = max(1, int(stride))

    # subclasses implement
    def _analyze(self, t: np.ndarray, v: np.ndarray, start: int) -> _Analysis:  # pragma: no cover
        raise NotImplementedError

    def _lookback(self) -> int:
        """Samples of history evaluate_latest needs (it analyses only the tail)."""
        return self.min_history

    def _floor(self, level: np.ndarray) -> np.ndarray:
        """Minimum spread: `min_spread_rel` of the baseline level's magnitude, at least
        `min_spread_abs`. Stops flat series (MAD = 0) from turning tiny blips into huge z."""
        return np.maximum(self.min_spread_rel * np.abs(np.nan_to_num(level)), self.min_spread_abs)

    def _scores_from(self, a: _Analysis) -> np.ndarray:
        return _score_from_excess(a.z / a.threshold)

    def score(self, timestamps, values) -> np.ndarray:
        t, v = _as_arrays(timestamps, values)
        if v.size == 0:
            return np.zeros(0)
        return self._scores_from(self._analyze(t, v, 0))

    def detect(self, timestamps, values) -> np.ndarray:
        return _suppress(self.score(timestamps, values) >= 0.5, self.suppression, self.rearm)

    def is_anomalous(self, timestamps, values) -> bool:
        return self.evaluate_latest(timestamps, values).anomalous

    def evaluate_latest(self, timestamps, values) -> AnomalyResult:
        t, v = _as_arrays(timestamps, values)
        n = v.size
        base = precheck(self, v)
        if isinstance(base, AnomalyResult):
            return base
        # analyse only the tail the latest verdict depends on (cheap for the rule engine)
        keep = min(n, self._lookback() + 1)
        a = self._analyze(t[n - keep :], v[n - keep :], keep - 1)
        z = float(a.z[-1])
        if np.isnan(z):
            return AnomalyResult(
                0.0, False, float("nan"), float("nan"), self.name,
                {**base, "reason": "not enough finite data in the baseline window"},
                status="insufficient_data",
            )
        s = float(_score_from_excess(np.array([z / a.threshold]))[0])
        exp = float(a.expected[-1])
        return AnomalyResult(
            score=s,
            anomalous=s >= 0.5,
            expected=exp,
            deviation=float(v[-1] - exp) if np.isfinite(exp) else float("nan"),
            method=str(a.method[-1]),
            detail={**base, "z": z, "spread": float(a.spread[-1]), "threshold": a.threshold},
        )


# --------------------------------------------------------------------------- detectors


class _WindowedDetector(_BaseDetector):
    """A detector that compares each point with the previous `window` samples."""

    def __init__(self, window: int, threshold: float, min_history: int | None = None, suppression: int = 0, **kw):
        super().__init__(**kw)
        self.window = int(window)
        self.threshold = float(threshold)
        self.min_history = int(min_history if min_history is not None else max(10, self.window // 4))
        self.suppression = int(suppression)

    def _lookback(self) -> int:
        return self.window


class RollingZScoreDetector(_WindowedDetector):
    """Rolling z-score ("windowed Gaussian").

    z = (x - mean) / std over the previous `window` samples (the point itself
    excluded). Assumes the recent past is roughly stationary and Gaussian;
    mean and std are *not* robust, so an earlier spike inflates std and masks
    the next anomalies for a window, and a flat series would give std = 0
    (guarded by the same minimum-spread floor as the robust detector).
    Needs `min_history` finite samples (default: a quarter of the window, >= 10).
    """

    name = "zscore"

    def __init__(self, window: int = 288, threshold: float = 3.0, min_history: int | None = None,
                 suppression: int = 0, **kw):
        super().__init__(window, threshold, min_history, suppression, **kw)

    def _analyze(self, t, v, start):
        mean, std, _ = _rolling_mean_std(v, self.window, self.min_history, start)
        spread = np.maximum(std, self._floor(mean))
        z = (v[start:] - mean) / spread
        return _Analysis(z, mean, spread, np.full(z.size, self.name, dtype=object), self.threshold)


class RobustMADDetector(_WindowedDetector):
    """Rolling median / MAD detector.

    expected = median of the previous `window` samples; spread = 1.4826 * MAD
    (= sigma for Gaussian noise), floored at `min_spread_rel` * |median| and
    `min_spread_abs` so a flat series (MAD = 0) does not turn a tiny blip into
    an enormous z. Median and MAD ignore up to half the window being outliers,
    so one incident does not mask the next. Assumes no seasonality within the
    window (use SeasonalDetector for daily/weekly patterns).
    """

    name = "robust"

    def __init__(self, window: int = 288, threshold: float = 5.0, min_history: int | None = None,
                 suppression: int = 0, **kw):
        super().__init__(window, threshold, min_history, suppression, **kw)

    def _robust(self, v, start):
        med, mad, _ = _rolling_median_mad(v, self.window, self.min_history, start, stride=self.stride)
        spread = np.maximum(MAD_TO_SIGMA * mad, self._floor(med))
        return med, spread

    def _analyze(self, t, v, start):
        med, spread = self._robust(v, start)
        z = (v[start:] - med) / spread
        return _Analysis(z, med, spread, np.full(z.size, self.name, dtype=object), self.threshold)


class SeasonalDetector(RobustMADDetector):
    """Same-time-of-day / same-time-of-week baseline, falling back to robust.

    For each point the seasonal expectation is the median, over the previous
    `max_periods` days (or weeks), of the samples nearest to the same phase
    (t - k*period, within `tolerance` sampling intervals, each smoothed with
    its two neighbours). It is used only when (a) at least `min_periods`
    earlier periods exist and (b) it explains the data: the MAD of its past
    residuals must be below `gain` x the robust spread of the raw window.
    Otherwise the detector is exactly RobustMADDetector. Daily vs weekly is
    chosen per point the same way (weekly must beat daily by `gain` too), so a
    series without a pattern, or too short to show one, stays robust.
    Residuals are re-centred on their own rolling median (absorbs slow trend).
    Assumes the pattern repeats in wall-clock time (timestamps in seconds).
    """

    name = "seasonal"

    def __init__(self, window: int = 288, threshold: float = 5.0, min_history: int | None = None,
                 suppression: int = 0, periods: tuple[float, ...] = (DAY, WEEK), min_periods: int = 3,
                 max_periods: int = 4, tolerance: float = 1.0, gain: float = 0.7, **kw):
        super().__init__(window, threshold, min_history, suppression, **kw)
        self.periods = tuple(float(p) for p in periods)
        self.min_periods = int(min_periods)
        self.max_periods = int(max_periods)
        self.tolerance = float(tolerance)
        self.gain = float(gain)

    def _lookback(self) -> int:
        # evaluate_latest gets a tail; seasonal needs max_periods * longest period of
        # history, which depends on the sampling interval -> use everything.
        return 10**12

    def _seasonal_expected(self, t, v, period, start, dt):
        n = v.size
        tm = np.maximum.accumulate(t)  # tolerate a backward step: searchsorted needs order
        idx = np.arange(start, n)
        # neighbour-smoothed values (median of i-1, i, i+1), causal use only (j+1 < i)
        padded = np.concatenate([[np.nan], v, [np.nan]])
        with warnings.catch_warnings():  # a window of three NaNs has no median: NaN is the answer
            warnings.simplefilter("ignore", RuntimeWarning)
            smooth = np.nanmedian(sliding_window_view(padded, 3), axis=1) if n else v
        cols = []
        for k in range(1, self.max_periods + 1):
            target = t[idx] - k * period
            j = np.clip(np.searchsorted(tm, target), 1, max(n - 1, 1))
            jl = j - 1
            pick = np.where(np.abs(tm[jl] - target) <= np.abs(tm[j] - target), jl, j)
            ok = (np.abs(tm[pick] - target) <= self.tolerance * dt) & (pick + 1 < idx)
            cols.append(np.where(ok, smooth[pick], np.nan))
        vals = np.stack(cols, axis=1)
        cnt = np.sum(~np.isnan(vals), axis=1)
        with warnings.catch_warnings():  # all-NaN rows -> NaN, silently
            warnings.simplefilter("ignore", RuntimeWarning)
            exp = np.nanmedian(vals, axis=1)
        return np.where(cnt >= self.min_periods, exp, np.nan)

    def _analyze(self, t, v, start):
        n = v.size
        med, spread = self._robust(v, start)
        z_best = (v[start:] - med) / spread
        exp_best = med.copy()
        spread_best = spread.copy()
        method = np.full(n - start, "robust", dtype=object)
        dt = sampling_interval(t)
        if not np.isfinite(dt) or n < 3:
            return _Analysis(z_best, exp_best, spread_best, method, self.threshold)
        span = np.nanmax(t) - np.nanmin(t)
        for period, label in zip(self.periods, ("daily", "weekly", "p3", "p4")):
            if span < self.min_periods * period or period < 4 * dt:
                continue
            # seasonal expectation for every point (residual statistics need the past ones)
            exp_all = self._seasonal_expected(t, v, period, 0, dt)
            resid = v - exp_all
            rmed, rmad, _ = _rolling_median_mad(resid, self.window, self.min_history, start, stride=self.stride)
            rspread = np.maximum(MAD_TO_SIGMA * rmad, self._floor(med))
            better = np.isfinite(exp_all[start:]) & np.isfinite(rspread) & (rspread < self.gain * spread_best)
            expected = exp_all[start:] + rmed
            zs = (v[start:] - expected) / rspread
            z_best = np.where(better, zs, z_best)
            exp_best = np.where(better, expected, exp_best)
            spread_best = np.where(better, rspread, spread_best)
            method = np.where(better, f"seasonal-{label}", method)
        return _Analysis(z_best, exp_best, spread_best, method, self.threshold)


class EnsembleDetector(SeasonalDetector):
    """The product default: seasonal-or-robust point score + level-shift score + hysteresis.

    * point component: SeasonalDetector's z (robust median/MAD over the last
      `window` samples unless a daily/weekly pattern is established and
      explains the data better), threshold `threshold` (5 robust sigmas);
    * change component: the median of the last `shift_len` point z-scores
      (each against its own past baseline, so still causal), threshold
      `shift_threshold` (4): a sustained moderate level shift is as
      suspicious as one large spike, and a median of 6 is not moved by a
      single spike;
    * combined excess e = max(|z_point| / threshold, |z_shift| / shift_threshold),
      score = e^4 / (1 + e^4) (0.5 at the threshold);
    * `detect()` alarms once per episode (above-threshold points separated by
      less than `rearm` samples) and at most once per `suppression` samples;
      `evaluate_latest()` is not suppressed (the rule engine has `for` and a
      recovery hold).

    All parameters are fixed for every series and expressed in samples of the
    series' own sampling interval (defaults: 288-sample baseline = one day at
    5-minute resolution, 72 min at 15 s; suppression = half a baseline).
    Assumes: anomalies are departures from the recent (or same-phase) level
    that are large relative to the recent noise; slow drifts are absorbed
    within about half a baseline window (a level shift alarms, then becomes
    the new normal).
    """

    name = "ensemble"

    def __init__(self, window: int = 288, threshold: float = 5.0, min_history: int | None = None,
                 suppression: int = 144, rearm: int = 12, shift_len: int = 6,
                 shift_threshold: float = 4.0, **kw):
        super().__init__(window, threshold, min_history, suppression, **kw)
        self.rearm = int(rearm)
        self.shift_len = int(shift_len)
        self.shift_threshold = float(shift_threshold)

    def _analyze(self, t, v, start):
        s0 = max(0, start - self.shift_len + 1)
        a = super()._analyze(t, v, s0)
        zshift = _trailing_median(a.z, self.shift_len, 0)[start - s0 :]
        zp = a.z[start - s0 :]
        e_point = np.abs(zp) / self.threshold
        e_shift = np.abs(zshift) / self.shift_threshold
        e = np.fmax(e_point, e_shift)
        e = np.where(np.isnan(zp), np.nan, e)  # missing point -> unscorable
        base_method = a.method[start - s0 :]
        labels = {m: "ensemble:" + str(m) for m in set(base_method.tolist())}  # a handful of names
        method = np.array([labels[m] for m in base_method.tolist()], dtype=object)
        method[e_shift > e_point] = "ensemble:shift"
        # express the combined excess as an equivalent point z (sign of the point deviation)
        z = np.sign(np.nan_to_num(zp)) * e * self.threshold
        return _Analysis(z, a.expected[start - s0 :], a.spread[start - s0 :], method, self.threshold)


#: The product's fixed parameters for every series (chosen by ``bench/nab.py --tune`` on the NAB
#: tuning half only; see docs/anomaly-detection.md). Windows are in samples.
LIKELIHOOD_DEFAULTS = {
    "threshold": 2.0,  # surprise of the averaged raw score: -log10(tail probability) >= 2
    "average": 30,  # raw scores averaged over the last 30 points
    "gate": 0.8,  # and the current point's raw excess >= 0.8 (4 robust sigmas, or a 3.2-sigma shift)
}


class LikelihoodDetector(_BaseDetector):
    """The product default: a robust raw score, then an anomaly-likelihood stage (two stages).

    1. Raw stage: :class:`EnsembleDetector`'s excess ``e`` per point (robust median/MAD point
       deviation over the last `window` samples, same-phase seasonal baseline when a daily/weekly
       pattern is established and explains the data, and the median of the last `shift_len`
       point z-scores for level shifts; 1.0 = its own threshold). Robust baselines are
       re-estimated every `stride` samples (cost / stride). Raw score ``r = min(e / raw_cap, 1)``.
    2. Likelihood stage (Numenta's anomaly likelihood, :mod:`detection.anomaly_likelihood`): the
       mean of the last `average` raw scores against a normal fitted to the earlier averages of
       this series (last `history` points); surprise = -log10 of its tail probability.

    A point is anomalous when its surprise >= `threshold` **and** its own raw excess >= `gate`
    (the current point must itself deviate; an average still high from a past spike does not keep
    an alert open), or, bypassing the likelihood, when its raw excess >= `range_gate` and it is a
    new extreme (beyond every earlier value by `range_tol` of the range seen so far: NAB's
    Numenta detector's "spatial anomaly") or a record (more than `record` times the largest raw
    excess seen earlier). Before `min_likelihood` earlier averages exist (a short series), it is
    anomalous when the raw excess alone >= 1, i.e. the raw detector's own verdict.

    ``score = q^4 / (1 + q^4)`` with ``q = min(surprise / threshold, e / gate)`` (q = e before the
    likelihood is established), raised by the bypasses: 0.5 exactly at the decision boundary.
    ``detect()`` alarms at the first anomalous point of an episode (anomalous points less than
    `rearm` samples apart), at most once per `suppression` samples. ``evaluate_latest_many()``
    gives the same verdicts as ``evaluate_latest()`` for many series at a fraction of the cost.
    One parameter set for every series.
    """

    name = "likelihood"

    def __init__(self, threshold: float = LIKELIHOOD_DEFAULTS["threshold"],
                 average: int = LIKELIHOOD_DEFAULTS["average"], gate: float = LIKELIHOOD_DEFAULTS["gate"],
                 history: int = 8640, min_likelihood: int = 100, sd_floor: float = 0.02, raw_cap: float = 2.0,
                 window: int = 288, stride: int = 12, shift_len: int = 6, point_threshold: float = 5.0,
                 shift_threshold: float = 4.0, rearm: int = 36, suppression: int = 0,
                 min_history: int | None = None, range_tol: float = 0.05, range_gate: float = 1.0, record: float = 2.0, **kw):
        super().__init__(stride=stride, **{k: kw[k] for k in ("min_spread_rel", "min_spread_abs") if k in kw})
        self.raw = EnsembleDetector(window=window, threshold=point_threshold, shift_len=shift_len,
                                    shift_threshold=shift_threshold, min_history=min_history, stride=stride, **kw)
        self.threshold = float(threshold)
        self.average = int(average)
        self.gate = float(gate)
        self.history = int(history)
        self.min_likelihood = int(min_likelihood)
        self.sd_floor = float(sd_floor)
        self.raw_cap = float(raw_cap)
        self.rearm = int(rearm)
        self.suppression = int(suppression)
        self.window = self.raw.window
        self.min_history = self.raw.min_history
        self.range_tol = float(range_tol)
        self.range_gate = float(range_gate)
        self.record = float(record)

    def raw_stage(self, t: np.ndarray, v: np.ndarray) -> tuple[_Analysis, np.ndarray]:
        """The raw detector's analysis and its excess per point (NaN = unscorable)."""
        if v.size == 0:
            return _Analysis(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0, dtype=object),
                             self.raw.threshold), np.zeros(0)
        a = self.raw._analyze(t, v, 0)
        return a, np.abs(a.z) / self.raw.threshold

    def decide(self, v: np.ndarray, excess: np.ndarray) -> dict[str, np.ndarray]:
        """Likelihood stage on a raw excess: surprise, established, and q (>= 1 <=> anomalous).

        Works along the last axis: one series, or one series per row."""
        # unscorable points (warm-up, missing values) are raw 0 (no evidence) for the likelihood
        raw = np.nan_to_num(np.clip(excess / self.raw_cap, 0.0, 1.0), nan=0.0)
        surprise, established = likelihood.anomaly_likelihood(
            raw, self.average, self.history, self.min_likelihood, self.sd_floor)
        e = np.nan_to_num(excess, nan=0.0)
        q = np.where(established, np.minimum(surprise / self.threshold, e / self.gate), e)
        first = np.full(v.shape[:-1] + (1,), np.nan)
        if self.range_tol > 0 and v.shape[-1] > 1:
            # a new extreme: beyond every earlier value by range_tol of the range seen so far
            with warnings.catch_warnings():  # all-NaN prefix -> NaN, silently
                warnings.simplefilter("ignore", RuntimeWarning)
                hi = np.concatenate([first, np.fmax.accumulate(v, axis=-1)[..., :-1]], axis=-1)
                lo = np.concatenate([first, np.fmin.accumulate(v, axis=-1)[..., :-1]], axis=-1)
            width = hi - lo
            with np.errstate(invalid="ignore", divide="ignore"):
                beyond = np.fmax(v - hi, lo - v) / np.where(width > 0, width, np.nan)
            beyond = np.where(established, np.nan_to_num(beyond, nan=0.0), 0.0)
            q = np.fmax(q, np.minimum(beyond / self.range_tol, e / self.range_gate))
        if self.record > 0 and v.shape[-1] > 1:
            # a record: more than `record` times the largest raw excess seen earlier
            prev = np.concatenate([np.zeros_like(first), np.maximum.accumulate(e, axis=-1)[..., :-1]], axis=-1)
            rec = e / np.maximum(self.record * prev, self.range_gate)
            q = np.fmax(q, np.where(established, rec, 0.0))
        q = np.where(np.isnan(excess), 0.0, q)
        return {"surprise": surprise, "established": established, "q": q}

    def analyze(self, timestamps, values) -> dict[str, Any]:
        """Per-point internals: raw analysis and excess, surprise, established, q."""
        t, v = _as_arrays(timestamps, values)
        a, excess = self.raw_stage(t, v)
        return {"t": t, "v": v, "analysis": a, "excess": excess, **self.decide(v, excess)}

    def score(self, timestamps, values) -> np.ndarray:
        return _score_from_excess(self.analyze(timestamps, values)["q"])

    def alarms(self, q: np.ndarray) -> np.ndarray:
        """`detect()`'s alarms from a q array (`decide()["q"]`): the first point of each episode."""
        return _suppress(_score_from_excess(q) >= 0.5, self.suppression, self.rearm)

    def _precheck(self, v: np.ndarray) -> AnomalyResult | dict:
        return precheck(self, v)

    def _latest(self, base: dict, latest: float, excess: float, q: float, surprise: float, established: bool,
                expected: float, z: float, spread: float, method: str) -> AnomalyResult:
        if np.isnan(excess):
            return AnomalyResult(0.0, False, float("nan"), float("nan"), self.name,
                                 {**base, "reason": "not enough finite data in the baseline window"},
                                 status="insufficient_data")
        s = float(_score_from_excess(np.array([q]))[0])
        exp = float(expected)
        return AnomalyResult(
            score=s,
            anomalous=s >= 0.5,
            expected=exp,
            deviation=float(latest - exp) if np.isfinite(exp) else float("nan"),
            method=f"likelihood:{method}" if established else str(method),
            detail={**base, "z": float(z), "spread": float(spread), "threshold": self.threshold,
                    "raw_excess": float(excess), "surprise": float(surprise),
                    "likelihood_established": bool(established), "gate": self.gate},
        )

    def evaluate_latest(self, timestamps, values) -> AnomalyResult:
        t, v = _as_arrays(timestamps, values)
        base = self._precheck(v)
        if isinstance(base, AnomalyResult):
            return base
        r = self.analyze(t, v)  # the likelihood needs the raw scores of the whole series given
        a = r["analysis"]
        return self._latest(base, v[-1], r["excess"][-1], r["q"][-1], r["surprise"][-1], r["established"][-1],
                            a.expected[-1], a.z[-1], a.spread[-1], a.method[-1])

    # ------------------------------------------------------------------ many series at once

    def _seasonal_applies(self, t: np.ndarray) -> bool:
        """Whether the raw stage's seasonal path could apply to a series with these timestamps."""
        dt = sampling_interval(t)
        if not np.isfinite(dt) or t.size < 3:
            return False
        span = np.nanmax(t) - np.nanmin(t)
        return any(span >= self.raw.min_periods * p and p >= 4 * dt for p in self.raw.periods)

    def _raw_stage_rows(self, V: np.ndarray) -> dict[str, np.ndarray]:
        """The raw stage for k series sharing timestamps (rows of V), when no seasonal path applies:
        exactly EnsembleDetector's robust point z and level-shift component, vectorised over rows."""
        raw = self.raw
        med, mad = _rolling_median_mad_rows(V, raw.window, raw.min_history, raw.stride)
        spread = np.maximum(MAD_TO_SIGMA * mad, raw._floor(med))
        zp = (V - med) / spread
        zshift = _trailing_median_rows(zp, raw.shift_len)
        e_point = np.abs(zp) / raw.threshold
        e_shift = np.abs(zshift) / raw.shift_threshold
        e = np.where(np.isnan(zp), np.nan, np.fmax(e_point, e_shift))
        z = np.sign(np.nan_to_num(zp)) * e * raw.threshold
        return {"z": z, "excess": np.abs(z) / raw.threshold, "expected": med, "spread": spread,
                "shift": e_shift > e_point}

    def evaluate_latest_many(self, series) -> list[AnomalyResult]:
        """`evaluate_latest` for many series at once (the same verdicts, tested).

        `series`: (timestamps, values) pairs. Series with identical timestamps (a range query's
        answer) are stacked and analysed as rows of one array, which costs a fraction of one call
        per series; a series whose span could hold a daily or weekly pattern goes alone."""
        out: list[AnomalyResult | None] = [None] * len(series)
        groups: dict[tuple, list[tuple[int, np.ndarray, np.ndarray, dict]]] = {}
        for i, (timestamps, values) in enumerate(series):
            t, v = _as_arrays(timestamps, values)
            base = self._precheck(v)
            if isinstance(base, AnomalyResult):
                out[i] = base
            else:
                groups.setdefault((t.size, t.tobytes()), []).append((i, t, v, base))
        for key in [k for k, members in groups.items() if self._seasonal_applies(members[0][1])]:
            for i, t, v, _base in groups.pop(key):
                out[i] = self.evaluate_latest(t, v)
        for members in groups.values():
            V = np.stack([m[2] for m in members])
            raw = self._raw_stage_rows(V)
            d = self.decide(V, raw["excess"])
            for row, (i, _t, v, base) in enumerate(members):
                method = "ensemble:shift" if raw["shift"][row, -1] else "ensemble:robust"
                out[i] = self._latest(base, v[-1], raw["excess"][row, -1], d["q"][row, -1],
                                      d["surprise"][row, -1], d["established"][row, -1],
                                      raw["expected"][row, -1], raw["z"][row, -1], raw["spread"][row, -1], method)
        return out  # type: ignore[return-value]


def _rolling_median_mad_rows(X: np.ndarray, window: int, min_count: int, stride: int,
                             chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """`_rolling_median_mad` (start 0) for every row of X (k series of n points) at once."""
    k, n = X.shape
    anchor = (np.arange(n) // stride) * stride
    reps, where = np.unique(anchor, return_inverse=True)
    padded = np.concatenate([np.full((k, window), np.nan), X], axis=1)
    rows_all = sliding_window_view(padded, window, axis=1)[:, reps].reshape(-1, window)
    m = rows_all.shape[0]
    med = np.full(m, np.nan)
    mad = np.full(m, np.nan)
    for a in range(0, m, chunk):
        rows = np.sort(rows_all[a : a + chunk], axis=1)
        c = np.sum(~np.isnan(rows), axis=1)
        md = _row_median(rows, c)
        ma = _row_median(np.sort(np.abs(rows - md[:, None]), axis=1), c)
        ok = c >= min_count
        med[a : a + chunk] = np.where(ok, md, np.nan)
        mad[a : a + chunk] = np.where(ok, ma, np.nan)
    return med.reshape(k, -1)[:, where], mad.reshape(k, -1)[:, where]


def _trailing_median_rows(Z: np.ndarray, length: int) -> np.ndarray:
    """`_trailing_median` (start 0) for every row of Z at once."""
    k, n = Z.shape
    padded = np.concatenate([np.full((k, length - 1), np.nan), Z], axis=1)
    rows = np.sort(sliding_window_view(padded, length, axis=1).reshape(-1, length), axis=1)
    return _row_median(rows, np.sum(~np.isnan(rows), axis=1)).reshape(k, n)


def evaluate_latest_many(detector, series) -> list[AnomalyResult]:
    """Verdicts on the latest point of many series: batched when the detector can, else one by one."""
    many = getattr(detector, "evaluate_latest_many", None)
    if many is not None:
        return many(series)
    return [detector.evaluate_latest(t, v) for t, v in series]


DETECTORS = {
    "zscore": RollingZScoreDetector,
    "robust": RobustMADDetector,
    "seasonal": SeasonalDetector,
    # "ensemble" is the rule field's default value (AnomalyMethod.ENSEMBLE): the product detector
    "ensemble": LikelihoodDetector,
    "likelihood": LikelihoodDetector,
    "robust-ensemble": EnsembleDetector,
}


def make_detector(kind: str = "ensemble", **params) -> _BaseDetector:
    """Build a detector by name (rule engine helper): zscore | robust | seasonal | robust-ensemble |
    ensemble (= likelihood, the product default)."""
    try:
        return DETECTORS[kind](**params)
    except KeyError:
        raise ValueError(f"unknown detector {kind!r}; choose from {sorted(DETECTORS)}") from None


def default_detector() -> LikelihoodDetector:
    """The detector the product uses for anomaly rules (and the NAB bench scores)."""
    return LikelihoodDetector()
