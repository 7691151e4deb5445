"""NAB (Numenta Anomaly Benchmark) scoring, re-implemented from the published rules.

Importable and tested (tests/detection/test_anomaly.py); used by bench/nab.py.
Follows NAB v1.1's `nab/sweeper.py` (the scorer used for the published
scoreboard), written independently from its description:

* probationary period: the first min(floor(0.15 * n), 0.15 * 5000) rows of a
  file are not scored at all (detections there are ignored; a window lying
  entirely inside it is neither rewarded nor counted as a miss);
* a detection inside a window [l, r] at row i has relative position
  p = -(r - i + 1) / (r - l + 1) and earns A_tp * sigma(p) / sigma(-1) with
  sigma(p) = 2 / (1 + exp(5 p)) - 1 (the "scaled sigmoid"): 1.0 at the first
  row of the window, ~0.85 at the middle, ~0 at its end. Only the best (= the
  earliest) detection per window counts;
* a window without a detection costs -A_fn;
* a detection outside every window is a false positive. NAB weighs it by the
  distance after the closest preceding window: A_fp * sigma(|r_prev - i| /
  (r_prev - l_prev)) (so a detection just after a window costs almost
  nothing, one far after it costs -A_fp); with no preceding window it costs
  -A_fp flat. Every detected row outside windows counts (NAB does not merge
  them - detectors are expected to suppress repeats themselves);
* corpus score = 100 * (S - S_null) / (S_perfect - S_null) where S sums the
  per-file raw scores, S_null = -A_fn * (windows scored) and S_perfect = A_tp *
  (all windows in the labels), exactly as NAB's runner normalises.

Profiles are NAB's `config/profiles.json` cost matrices.

Event-level precision / recall (not part of NAB, added for readability):
a scored window with at least one detection is a TP, without one a FN;
detections outside windows are merged into events (a detection within
`merge` rows after the previous outside detection joins its event), each
event is one FP.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

PROFILES = {
    "standard": {"tp": 1.0, "fp": 0.11, "fn": 1.0},
    "reward_low_FP_rate": {"tp": 1.0, "fp": 0.22, "fn": 1.0},
    "reward_low_FN_rate": {"tp": 1.0, "fp": 0.11, "fn": 2.0},
}

PROBATION_PERCENT = 0.15


def scaled_sigmoid(x: float) -> float:
    """NAB's scaled sigmoid: 2 * sigmoid(-5 x) - 1, and -1 at or beyond x = 3."""
    if x >= 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


def probation_length(n_rows: int, percent: float = PROBATION_PERCENT) -> int:
    """Rows at the start of a file that are not scored (NAB: 15 %, capped at 750 rows)."""
    return int(min(math.floor(percent * n_rows), percent * 5000))


def window_indices(timestamps: np.ndarray, windows) -> list[tuple[int, int]]:
    """Convert [(start, end), ...] label windows to inclusive row ranges [(l, r), ...].

    `timestamps` and the window bounds must be comparable (datetime64 or numbers).
    A window that contains no row is dropped."""
    out = []
    ts = np.asarray(timestamps)
    for start, end in windows:
        inside = np.flatnonzero((ts >= start) & (ts <= end))
        if inside.size:
            out.append((int(inside[0]), int(inside[-1])))
    return sorted(out)


@dataclass
class FileScore:
    raw: float
    null: float  # raw score of the null detector on this file
    n_windows: int  # all windows (NAB's perfect-score count)
    n_scored_windows: int  # windows with at least one row after probation
    tp_windows: int
    fn_windows: int
    fp_detections: int  # outside-window detected rows (NAB counts each)
    fp_events: int  # after merging
    fp_cost: float
    window_rewards: list[float] = field(default_factory=list)
    first_detection_rel: list[float | None] = field(default_factory=list)


def score_file(
    detections: np.ndarray,
    windows: list[tuple[int, int]],
    profile: str | dict = "standard",
    merge: int = 0,
    probation: int | None = None,
) -> FileScore:
    """Score one file's boolean detections against inclusive row windows."""
    w = PROFILES[profile] if isinstance(profile, str) else profile
    det = np.asarray(detections, dtype=bool)
    n = det.size
    prob = probation_length(n) if probation is None else int(probation)
    windows = sorted(windows)
    max_tp = scaled_sigmoid(-1.0)

    scored = [r >= prob for (_, r) in windows]
    rewards = [(-w["fn"] if s else 0.0) for s in scored]
    first_rel: list[float | None] = [None] * len(windows)
    fp_cost = 0.0
    fp_rows = 0
    fp_events = 0
    last_fp = None
    rights = np.array([r for (_, r) in windows], dtype=int)

    for i in np.flatnonzero(det):
        if i < prob:
            continue
        k = next((j for j, (l, r) in enumerate(windows) if l <= i <= r), None)
        if k is not None:
            l, r = windows[k]
            pos = -(r - i + 1) / (r - l + 1)
            reward = scaled_sigmoid(pos) * w["tp"] / max_tp
            rewards[k] = max(rewards[k], reward)  # only the earliest (= best) detection counts
            if first_rel[k] is None:
                first_rel[k] = (i - l) / max(r - l, 1)
            continue
        # false positive: weight by distance after the closest preceding window
        prev = np.flatnonzero(rights < i)
        if prev.size == 0:
            fp_cost += -w["fp"]
        else:
            l, r = windows[int(prev[-1])]
            width_minus_1 = r - l
            pos = abs(r - i) / width_minus_1 if width_minus_1 > 0 else 3.0
            fp_cost += scaled_sigmoid(pos) * w["fp"]
        fp_rows += 1
        if last_fp is None or i - last_fp > merge:
            fp_events += 1
        last_fp = i

    tp = sum(1 for k, s in enumerate(scored) if s and first_rel[k] is not None)
    n_scored = sum(scored)
    return FileScore(
        raw=float(sum(rewards) + fp_cost),
        null=float(-w["fn"] * n_scored),
        n_windows=len(windows),
        n_scored_windows=n_scored,
        tp_windows=tp,
        fn_windows=n_scored - tp,
        fp_detections=fp_rows,
        fp_events=fp_events,
        fp_cost=float(fp_cost),
        window_rewards=[float(x) for x in rewards],
        first_detection_rel=first_rel,
    )


def normalized_score(files: list[FileScore], profile: str | dict = "standard") -> float:
    """NAB's corpus normalisation: null detector = 0, perfect detector = 100."""
    w = PROFILES[profile] if isinstance(profile, str) else profile
    s = sum(f.raw for f in files)
    s_null = sum(f.null for f in files)
    s_perfect = w["tp"] * sum(f.n_windows for f in files)
    if s_perfect == s_null:
        return float("nan")
    return 100.0 * (s - s_null) / (s_perfect - s_null)


def event_metrics(files: list[FileScore]) -> dict[str, float]:
    """Event-level precision / recall / F1 over the corpus."""
    tp = sum(f.tp_windows for f in files)
    fn = sum(f.fn_windows for f in files)
    fp = sum(f.fp_events for f in files)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fn": fn, "fp_events": fp}
