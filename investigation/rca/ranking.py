"""Root-cause ranking over a case: every service once, best first.

Method (see docs/investigation.md, "Root-cause ranking"):

1. Metrics - per series, a robust z-score (median / IQR of a baseline that ends well before the
   detection time, BARO's RobustScorer), smoothed by a short rolling median (a sustained change, not
   one spike), read in the direction that is bad for the metric's kind (error, latency, cpu/mem up;
   success rate, request rate down). Its *strength* is the peak after the detection time (what came
   before - the tail of an earlier incident, a missed scrape - is not this fault); its *onset* is the
   start of the excursion that contains that peak, searched up to five minutes back (so a late
   detection still dates the true onset). A flat baseline (an error ratio of exactly 0) is measured
   against a thousandth of the largest value of the same metric name in the case, so the cause's
   larger jump does not tie with its callers'. A service's metric evidence is its strongest series.
   A crash is the strongest signal there is: the service's own availability series (`up`, `alive`)
   held at 0, or - when it has no availability series that stays up and its request count does not
   read a present 0 (silence: nothing reached it) - most of its series vanishing.
2. Logs - templates (investigation.logmining.mine) new or rising after the detection time vs the
   baseline.
3. Traces - how often a service is the origin of erroring traces in the window vs the baseline.
4. Fusion of the three, then the topology: a service whose callee (or a callee's callee) is anomalous
   with an earlier or equal onset is "explained by its dependencies" and is ranked below it; load
   drops and vanished series are explained by a crashed or anomalous caller; latency / resource
   symptoms that coincide with a substantial (≥ 25 %) rise of the service's own incoming load are
   discounted.

Pure: no Django, no network, no clock.
"""
from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .case import Case

LOOKBACK = 300.0  # onset search starts this long before the detection time (detection ≤ 3 min late)
HORIZON = 900.0  # and ends this long after it
ANOMALOUS = 4.0
BASE_PEAK = 4.0  # smoothed |z| that ordinary noise reaches within a baseline
CRASH = 1e4  # z-units of a crash (availability down / series vanished): above any other single signal
VANISH_LAG = 60.0  # a crashed service's series vanish up to this long after its own first symptoms
LOAD_RISE = 0.25  # incoming load must rise by this share of its baseline to explain latency

# (pattern, weight when the metric goes up, weight when it goes down, kind) - first match wins.
_KINDS: list[tuple[re.Pattern, float, float, str]] = [
    (re.compile(r"success|availab|(^|[-_.])ok($|[-_.])|2xx|apdex"), 0.2, 1.0, "success"),
    (re.compile(r"err|fail|5xx|4xx|exception|fault|reject|refus|timeout|restart|oom|kill"), 1.0, 0.2, "error"),
    (re.compile(r"lat|duration|p\d\d|response.?time|(^|[-_.])rt($|[-_.])|delay|wait|queue"), 1.0, 0.3, "latency"),
    (re.compile(r"loss|drop|retrans|discard"), 1.0, 0.3, "loss"),
    (re.compile(r"cpu|mem|heap|rss|(^|[-_.])gc|thread|disk|(^|[-_.])fd|loadavg|(^|[-_.])io|swap|throttl"), 1.0, 0.6,
     "resource"),
    (re.compile(r"net|byte|rx|tx|receiv|transmit|packet|socket|conn"), 0.6, 0.8, "network"),
    (re.compile(r"req|workload|throughput|rps|qps|tps|count|call|rate|traffic|hits"), 0.35, 0.8, "load"),
]
# which kinds of dependency anomaly can explain a kind of symptom (errors flow up as errors, slowness as
# slowness; load changes flow down, so a caller explains a callee's load change)
_ERRORS = {"error", "success", "missing", "logs", "traces", "loss"}
_SLOW = {"latency", "resource", "loss", "missing", "network", "error", "traces", "other"}
EXPLAINS = {
    "error": _ERRORS, "success": _ERRORS, "logs": _ERRORS, "traces": _ERRORS,
    "latency": _SLOW, "network": _SLOW | {"load"}, "loss": {"loss", "network", "missing"},
    "other": _ERRORS | _SLOW,
    "load": _ERRORS | _SLOW | {"load"},  # (upstream)
    "missing": {"missing"},  # (upstream) a crashed caller silences its callees
}
_UPSTREAM = {"load", "missing"}  # kinds explained by callers rather than by callees


# a 0/1 availability series (Prometheus `up`, alive, healthy): sustained 0 is a crash, staying 1 means alive
_AVAILABILITY = re.compile(r"^(up|alive|healthy?|ready|running)$|(^|[-_.])(up|alive)$")


def metric_kind(name: str) -> tuple[float, float, str]:
    """(weight when it rises, weight when it falls, kind) for a free-text metric name."""
    lowered = name.lower()
    for pattern, up, down, kind in _KINDS:
        if pattern.search(lowered):
            return up, down, kind
    return 1.0, 1.0, "other"


@dataclass
class RankedService:
    service: str
    score: float
    onset: float | None
    top_metric: str | None
    signals: dict[str, float] = field(default_factory=dict)  # per modality: metrics, logs, traces
    evidence: str = "other"  # kind of the strongest evidence: error, latency, resource, load, missing, logs...
    explained_by: str | None = None  # the anomalous dependency that explains this service's symptoms


@dataclass
class _Evidence:
    strength: float = 0.0
    onset: float | None = None
    top: str | None = None
    kind: str = "other"
    curve: np.ndarray | None = None  # metrics only: anomaly per window step
    kinds: set = field(default_factory=set)  # every kind of evidence that is anomalous, not just the top


def _windows(case: Case) -> tuple[np.ndarray, np.ndarray, float]:
    """Masks of the baseline and the analysis window, and the lookback used."""
    t = case.times
    td = case.detection_time
    t0 = float(t[0]) if t.size else td
    lookback = min(LOOKBACK, max(0.0, 0.5 * (td - t0)))
    base = t < td - lookback
    if base.sum() < 5:
        base = t < td
    if base.sum() < 5:  # detection at the very start: the first fifth of the data is all we have
        base = np.arange(t.size) < max(2, t.size // 5)
    window = (t >= td - lookback) & (t <= td + HORIZON) & ~base
    return base, window, lookback


def _smooth_width(step: float) -> int:
    if step > 20:
        return 1
    w = max(3, int(round(30.0 / max(step, 1e-9))))
    w = min(w, 31)
    return w if w % 2 else w + 1


def _ffill(x: np.ndarray) -> np.ndarray:
    mask = np.isnan(x)
    if not mask.any():
        return x
    idx = np.where(~mask, np.arange(x.size), 0)
    np.maximum.accumulate(idx, out=idx)
    out = x[idx]
    first = np.flatnonzero(~mask)
    if first.size:
        out[: first[0]] = x[first[0]]
    return out


def _rolling_median(x: np.ndarray, w: int) -> np.ndarray:
    if w <= 1 or x.size < w:
        return x
    pad = w // 2
    padded = np.concatenate([np.full(pad, x[0]), x, np.full(pad, x[-1])])
    return np.median(sliding_window_view(padded, w), axis=1)


def robust_scale(base: np.ndarray) -> tuple[float, float]:
    """Median and a robust spread of a baseline, floored so near-constant series do not explode."""
    med = float(np.median(base))
    q1, q3 = np.percentile(base, [25, 75])
    mad = float(np.median(np.abs(base - med)))
    scale = max((q3 - q1) / 1.349, 1.4826 * mad, 0.25 * float(np.std(base)), 0.01 * abs(med), 1e-6 * (1 + abs(med)))
    return med, scale


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, length) of every run of True in `mask`."""
    out, start = [], None
    for i, m in enumerate(mask):
        if m and start is None:
            start = i
        elif not m and start is not None:
            out.append((start, i - start))
            start = None
    if start is not None:
        out.append((start, mask.size - start))
    return out


def _excursion_onset(directional: np.ndarray, post: np.ndarray, peak: float) -> int:
    """Onset of the anomaly that peaks after the detection time: the start of the contiguous run above
    max(3, a quarter of the peak) that contains the peak (noise earlier in the lookback is not it)."""
    d = np.where(post, directional, -np.inf)
    top = int(np.argmax(d))
    thr = max(3.0, 0.25 * peak)
    i = top
    while i > 0 and directional[i - 1] >= thr:
        i -= 1
    return i


def _down_run(x: np.ndarray, level: float, min_run: int) -> int | None:
    """Index of the first run of >= min_run steps at or below `level` (NaN counts as down), or None."""
    for start, length in _runs(~(x > level)):
        if length >= min_run:
            return start
    return None


def _metric_evidence(case: Case, base: np.ndarray, window: np.ndarray) -> dict[str, _Evidence]:
    t = case.times
    td = case.detection_time
    w = _smooth_width(case.step)
    widx = np.flatnonzero(window)
    # the strength of an anomaly is read after the detection time (a fault persists; noise in the lookback
    # must not win); the lookback only serves to date the onset of a late detection
    post = t[widx] >= td - max(case.step, 10.0)
    if widx.size and not post.any():
        post = np.ones(widx.size, bool)
    recent_mask = window & (t < td - max(case.step, 10.0))
    min_missing_run = max(3, int(math.ceil(30.0 / max(case.step, 1e-9))))
    min_down_run = max(2, int(math.ceil(15.0 / max(case.step, 1e-9))))
    # a same-unit floor for flat baselines: a metric name shared by several services (error-ratio) is on
    # one scale, so a jump from exactly 0 is measured against a thousandth of the largest value seen
    # (otherwise every jump from 0 saturates alike and the cause ties with its callers)
    name_max: dict[str, float] = {}
    for metrics in case.series.values():
        for name, x in metrics.items():
            fin = np.abs(x[np.isfinite(x)])
            if fin.size:
                name_max[name] = max(name_max.get(name, 0.0), float(fin.max()))
    out: dict[str, _Evidence] = {}
    for service, metrics in case.series.items():
        per: list[tuple[float, float | None, str, str]] = []  # strength, onset, metric, kind
        load_up: tuple[float, float | None] = (0.0, None)
        missing_runs: list[float] = []
        down_at: list[float] = []  # an availability series ("up") sustained at 0
        alive = False  # an availability series that stays up: missing series mean silence, not a crash
        n_metrics = 0
        missing_kinds: set[str] = set()
        silent = False  # its request count still reports, at ~0: nothing reached it (no samples to time)
        curve = np.zeros(widx.size)  # the service's anomaly over the window (max over its series)
        for name, x in metrics.items():
            b = x[base]
            b = b[np.isfinite(b)]
            if b.size < 3 or widx.size == 0:
                continue
            xw = x[window]
            if _AVAILABILITY.search(name.lower()):
                level = 0.5 * float(np.median(b))
                if level > 0:
                    i = _down_run(np.where(post, xw, np.inf), level, min_down_run)  # a crash persists
                    if i is not None:
                        down_at.append(float(t[widx[i]]))
                    elif np.isfinite(xw[post]).any():
                        alive = True
                continue  # a 0/1 availability series is read by this rule only
            n_metrics += 1
            # a long run of missing values in the window, for a series that was present in the baseline
            if np.isnan(xw).any() and np.mean(np.isnan(x[base])) < 0.2:
                first_post = int(np.argmax(post))
                runs = [(st, ln) for st, ln in _runs(np.isnan(xw))  # still missing after the detection
                        if ln >= min_missing_run and st + ln > first_post]
                if runs:
                    missing_runs.append(float(t[widx[runs[0][0]]]))
                    missing_kinds.add(metric_kind(name)[2])
            if np.all(np.isnan(xw)):
                continue
            # the baseline is the calmer of two pre-detection stretches: the early one (before the lookback)
            # or the recent one (the lookback up to the detection). An earlier incident's tail makes the early
            # one wide; a late detection's onset makes the recent one wide. Only a calm stretch is normal.
            bmask = base
            recent = x[recent_mask]
            recent = recent[np.isfinite(recent)]
            med, scale = robust_scale(b)
            if recent.size >= max(5, 0.5 * np.count_nonzero(recent_mask)):
                med_r, scale_r = robust_scale(recent)
                if scale_r < 0.5 * scale:
                    b, med, scale, bmask = recent, med_r, scale_r, recent_mask
            if np.percentile(b, 75) - np.percentile(b, 25) <= 0 and np.median(np.abs(b - med)) <= 0:
                scale = max(scale, 1e-3 * name_max.get(name, 0.0))  # a flat baseline: the shared unit's floor
            smooth_all = _rolling_median(_ffill(x.copy()), w)
            z_all = np.clip((smooth_all - med) / scale, -1e3, 1e3)
            z = z_all[window]
            up_w, down_w, kind = metric_kind(name)
            directional = np.maximum(z * up_w, -z * down_w)
            # a series whose baseline already has bursts this large is noisy, not faulty: scale its peak
            # by how far the baseline's own extremes sit above ordinary noise
            base_dir = np.maximum(z_all[bmask] * up_w, -z_all[bmask] * down_w)
            base_peak = float(np.percentile(base_dir, 95)) if base_dir.size else 0.0
            damp = max(1.0, base_peak / BASE_PEAK)
            peak = float(np.max(directional[post])) / damp
            onset = None
            if peak >= 3.0:
                onset = float(t[widx[_excursion_onset(directional / damp, post, peak)]])
                curve = np.maximum(curve, directional / damp)
            per.append((peak, onset, name, kind))
            if kind == "load" and med > 0:
                tail = x[window][post][-max(2, min_missing_run):]
                if np.isfinite(tail).all() and np.all(tail <= 0.05 * med):
                    silent = True
            if kind == "load" and z.max() > 0:
                up_peak = float(z[post].max())
                rel = float(np.max(smooth_all[window][post])) / med - 1.0 if med > 0 else math.inf
                if up_peak >= ANOMALOUS and rel >= LOAD_RISE and up_peak >= load_up[0]:
                    above = np.flatnonzero(z >= max(3.0, 0.2 * up_peak))
                    load_up = (up_peak, float(t[widx[above[0]]]))
        # symptoms explained by the service's own incoming load rising first (and substantially): discount
        if load_up[1] is not None:
            per = [(p * 0.25, o, m, k) if k in ("latency", "resource", "network") and o is not None
                   and load_up[1] <= o else (p, o, m, k) for p, o, m, k in per]
        ev = _Evidence()
        if per:
            per.sort(key=lambda r: -r[0])
            ev.strength, ev.top, ev.kind = per[0][0], per[0][2], per[0][3]
            onsets = [o for p, o, _, _ in per if o is not None and p >= 0.5 * ev.strength]
            ev.onset = min(onsets) if onsets else None
            ev.kinds = {k for p, _, _, k in per if p >= ANOMALOUS}
        ev.curve = curve
        # a crash: the service's own availability series stays down, or (without one that stays up) most
        # of its series vanish while they were present in the baseline - the strongest signal there is
        crash_at = None
        if down_at:
            crash_at = min(down_at)
        elif (not alive and not (silent and "resource" not in missing_kinds) and n_metrics
              and len(missing_runs) >= max(1, 0.5 * n_metrics)):
            crash_at = min(missing_runs)
            # series vanish some scrapes after the crash: an own anomaly just before is its start
            if ev.onset is not None and crash_at - VANISH_LAG <= ev.onset < crash_at:
                crash_at = ev.onset
        if crash_at is not None:
            first = int(np.searchsorted(t[widx], crash_at))
            curve[first:] = np.maximum(curve[first:], CRASH)
            ev = _Evidence(CRASH, crash_at, "up" if down_at else ev.top, "missing", curve, ev.kinds | {"missing"})
        out[service] = ev
    return out


_ERRORISH = re.compile(r"error|exception|fail|traceback|panic|fatal|critical|timeout|refused|unavailable|"
                       r"denied|invalid|stack|nullpointer|errno", re.I)


def _log_evidence(case: Case, lookback: float) -> dict[str, _Evidence]:
    if not case.logs:
        return {}
    from investigation.logmining import mine  # pure (drain3); imported lazily to keep metrics-only fast

    logging.getLogger("drain3").setLevel(logging.WARNING)

    td = case.detection_time
    start = td - lookback  # the baseline ends here
    count_from = td - max(case.step, 10.0)  # window counts start here (as for metrics: after detection)
    end = td + HORIZON
    t_first = min(float(case.times[0]) if case.times.size else td, min(line.time for line in case.logs))
    base_dur = max(start - t_first, 1.0)
    win_dur = max(min(end, max(line.time for line in case.logs)) - count_from, 1.0)
    templates = mine([line.line for line in case.logs])
    counts: dict[tuple[str, str], list] = {}
    for line, tpl in zip(case.logs, templates):
        if line.time > end or start <= line.time < count_from:
            continue
        entry = counts.setdefault((line.service, tpl), [0, []])
        if line.time < start:
            entry[0] += 1
        else:
            entry[1].append(line.time)
    out: dict[str, _Evidence] = {}
    for (service, tpl), (cb, window_times) in counts.items():
        cw = len(window_times)
        if cw == 0:
            continue
        rate = cb / base_dur
        expected = rate * win_dur
        z = (cw - expected) / math.sqrt(expected + 1.0)
        if z <= 0:
            continue
        z *= 1.0 if _ERRORISH.search(tpl) else 0.4
        # onset: the occurrence from which the excess over the baseline rate is largest (a scan /
        # CUSUM change point); for a new template that is its first occurrence
        ts = np.sort(np.asarray(window_times))
        first = _poisson_change_point(ts, max(rate, 0.1 / base_dur), min(end, ts[-1]) + 1.0)
        ev = out.setdefault(service, _Evidence(kind="logs"))
        if z > ev.strength:
            ev.strength, ev.top, ev.onset = z, f"log: {tpl[:80]}", (first if z >= 3.0 else None)
    return out


def _poisson_change_point(ts: np.ndarray, rate0: float, end: float) -> float:
    """The event time from which the rate rises most convincingly above `rate0` (Poisson likelihood
    ratio of "rate λ1 from t_i on" against "rate λ0 throughout")."""
    n = ts.size
    after = n - np.arange(n)
    span = np.maximum(end - ts, 1e-9)
    lam1 = after / span
    llr = after * np.log(np.maximum(lam1 / rate0, 1e-12)) - (lam1 - rate0) * span
    return float(ts[int(np.argmax(llr))])


def _trace_evidence(case: Case, lookback: float) -> dict[str, _Evidence]:
    if not case.traces:
        return {}
    td = case.detection_time
    start, end = td - lookback, td + HORIZON
    base_n = win_n = 0
    base_c: dict[str, int] = {}
    win_c: dict[str, int] = {}
    first: dict[str, float] = {}
    for tr in case.traces:
        if tr.time > end:
            continue
        in_window = tr.time >= start
        if in_window:
            win_n += 1
        else:
            base_n += 1
        if not tr.origin_service or not (tr.error_services or tr.origin_service):
            continue
        target = win_c if in_window else base_c
        target[tr.origin_service] = target.get(tr.origin_service, 0) + 1
        if in_window and (tr.origin_service not in first or tr.time < first[tr.origin_service]):
            first[tr.origin_service] = tr.time
    out: dict[str, _Evidence] = {}
    for service, cw in win_c.items():
        p_base = (base_c.get(service, 0) + 0.5) / (base_n + 1.0)
        expected = p_base * win_n
        z = (cw - expected) / math.sqrt(expected + 1.0)
        if z > 0:
            out[service] = _Evidence(z, first.get(service), "traces: error origin", "traces")
    return out


def _compress(z: float) -> float:
    """z-units -> evidence units: linear up to 10, logarithmic beyond (a 1000-sigma jump of a flat series
    should not drown every other signal)."""
    if z <= 10.0:
        return max(z, 0.0)
    return 10.0 + 4.0 * math.log(z / 10.0)


def _active_at(ev: _Evidence | None, times: np.ndarray, when: float | None, tol: float) -> bool:
    """Is a dependency's metric anomaly still on when a symptom starts (not a burst that came and went)?
    Without metric evidence (logs or traces only) the onset order alone decides."""
    if ev is None or ev.curve is None or when is None or not ev.curve.size or ev.strength < ANOMALOUS:
        return True
    lo, hi = np.searchsorted(times, [when - tol, when + 4 * tol])
    part = ev.curve[lo:max(hi, lo + 1)]
    return bool(part.size == 0 or part.max() >= 3.0)


def _descendants(edges: list[tuple[str, str]], depth: int = 3) -> dict[str, set[str]]:
    callees: dict[str, set[str]] = {}
    for a, b in edges:
        if a != b:
            callees.setdefault(a, set()).add(b)
    out: dict[str, set[str]] = {}
    for s in callees:
        seen: set[str] = set()
        frontier = {s}
        for _ in range(depth):
            frontier = {c for f in frontier for c in callees.get(f, ())} - seen - {s}
            seen |= frontier
        out[s] = seen
    return out


def rank_root_causes(case: Case, *, feedback=None) -> list[RankedService]:
    """Rank every service of `case` as the root cause, best first (see the module docstring).
    `feedback` (an `investigation.rca.feedback.Feedback`) re-weights services responders confirmed or
    rejected for similar incidents."""
    base, window, lookback = _windows(case)
    metrics = _metric_evidence(case, base, window)
    logs = _log_evidence(case, lookback)
    traces = _trace_evidence(case, lookback)
    fused: dict[str, _Evidence] = {}
    signals: dict[str, dict[str, float]] = {}
    for s in case.services:
        parts = {"metrics": metrics.get(s, _Evidence()), "logs": logs.get(s, _Evidence()),
                 "traces": traces.get(s, _Evidence())}
        weights = {"metrics": 1.0, "logs": 0.8, "traces": 0.8}
        comp = {k: _compress(v.strength) * weights[k] for k, v in parts.items()}
        main = max(comp, key=comp.get)
        # the strongest modality plus a share of the others: agreement between modalities adds up
        total = comp[main] + 0.3 * sum(v for k, v in comp.items() if k != main)
        onsets = [v.onset for k, v in parts.items() if v.onset is not None and comp[k] >= 0.5 * comp[main]]
        kinds = {parts[main].kind} | parts["metrics"].kinds | {v.kind for k, v in parts.items()
                                                              if k != "metrics" and v.strength >= ANOMALOUS}
        fused[s] = _Evidence(total, min(onsets) if onsets else None, parts[main].top, parts[main].kind, kinds=kinds)
        signals[s] = {k: round(v.strength, 3) for k, v in parts.items() if k == "metrics" or v.strength}
    adjusted = {s: ev.strength for s, ev in fused.items()}
    explained_by: dict[str, str] = {}
    if case.edges:
        tol = max(case.step, 2.0)
        below = _descendants(case.edges)
        above = _descendants([(b, a) for a, b in case.edges])
        times_w = case.times[window]
        for s, ev in fused.items():
            if ev.strength < ANOMALOUS or ev.kind not in EXPLAINS:
                continue
            kinds = EXPLAINS[ev.kind]
            # load changes flow down the call graph (a caller explains them); errors, latency and
            # outages flow up (a callee explains them)
            candidates = above.get(s, ()) if ev.kind in _UPSTREAM else below.get(s, ())
            culprits = [d for d in candidates if d in fused and fused[d].strength >= ANOMALOUS
                        and fused[d].kinds & kinds and fused[d].onset is not None
                        and (ev.onset is None or fused[d].onset <= ev.onset + tol)
                        and _active_at(metrics.get(d), times_w, ev.onset, tol)]
            if culprits:
                explained_by[s] = max(culprits, key=lambda d: fused[d].strength)
                adjusted[s] = ev.strength * 0.3
            elif below.get(s):
                adjusted[s] = ev.strength * 1.1
        for _ in range(3):  # an explained service ranks below what explains it
            for s, d in explained_by.items():
                adjusted[s] = min(adjusted[s], 0.95 * adjusted[d])
    ranked = [RankedService(s, round(float(adjusted[s]), 4), fused[s].onset, fused[s].top, signals[s],
                            fused[s].kind, explained_by.get(s)) for s in case.services]
    ranked.sort(key=lambda r: (-r.score, r.onset if r.onset is not None else math.inf, r.service))
    if feedback is not None:
        ranked = feedback.apply(ranked)
    return ranked
