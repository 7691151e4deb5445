"""Log template mining: generic masking + drain3 + post-processing, and window comparison.

Pure Python (no Django). Public surface (stable):

* `mine(lines) -> list[str]`: one template per input line, same order.
* `compare_windows(window, baseline, ...) -> list[TemplateStat]`: templates that are new in
  the window or whose rate rose significantly versus the baseline, best first, bounded.
* `mask(text) -> str`, `message_of(line)`, `extract_trace_ids(line)`, `LogMiner` for callers
  that want to stream.

ONE configuration for every system; nothing is tuned per log source. See docs/log-mining.md.

Pipeline per line:

1. JSON lines (`{...}` objects) are mined on their message field (`msg`, `message`, `log`,
   first one present) and keep their level: the mined text is `"[<level>] <message>"`, so
   the same message at `error` and at `info` are two templates. Other fields (ts, service,
   trace_id, ...) are ignored for mining. Non-JSON lines are mined as they are.
2. Generic masking (`mask`): variables are replaced by `<*>` BEFORE clustering: URLs (the
   scheme is kept, `https://<*>`), e-mail addresses, UUIDs, MAC and IPv6 addresses, ISO dates
   and date-times, textual date-times (`Sat Jun 18 02:08:10 2005`, `12/Mar/2024:10:11:12 +0000`),
   sizes with a unit word (`16.0 B`, `2 GiB`), booleans, dimensions (`80x25`), dotted numbers (IPv4, versions, decimals: one `<*>`), numbers with a unit
   glued on (`150ms`, `1.5s`, `4GB`, `80%`), identifiers with an underscore-joined number
   (`blk_-123`, `rdd_4_2`, `task_12_m_3`), hex (`0x1f`, 8+ hex digits with a digit), long
   mixed letter/digit opaque ids, absolute paths, and every all-digit sub-token between
   delimiters. A port stays a separate wildcard (`10.0.0.1:8080` -> `<*>:<*>`), and so do the
   parts of a clock time (`12:01:02` -> `<*>:<*>:<*>`). That is the Loghub convention.
   Words with digits inside them are kept (`tty2`, `eth0`, `e820`, `jk2_init`).
3. drain3's `Drain` (the fixed-depth prefix tree, depth 4, sim_th 0.5) clusters the masked
   tokens. A subclass changes one thing: a position that is `<*>` in both the template and the
   masked message is left out of the similarity, so lines that are mostly variables still join
   their cluster instead of opening a new one per line (plain Drain scores them ~0).
4. Post-processing, over the distinct masked messages of each cluster:
   * re-split: a position with exactly two distinct values that are plain words (or one word
     and one non-empty other) is a closed choice of the message, not a variable
     (startup/shutdown, view/modify): the cluster is split on it. Three or more values stay a
     variable (user names).
   * template rebuilt from the members: a position equal in every member is constant;
     otherwise `<*>` with the members' common prefix/suffix kept when it ends at punctuation
     (`user=root`, `user=test` -> `user=<*>`; `-`, `.`, `_` join words, so `host-07` -> `<*>`).
     Adjacent wildcards are collapsed (`<*><*>`, `<*>.<*>`, `<*>-<*>`).
   * templates that differ only in the length of runs of space-separated wildcards are one
     template written with a single `<*>` (variable-length lists: `delete <*> <*> <*>`).
   Clusters with the same final template are one template.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from drain3.drain import Drain

WILDCARD = "<*>"
_W = "\ue000"  # private-use sentinel for a wildcard while masking (never in real text)

# Configuration: one for every system (see docs/log-mining.md for how it was chosen).
DEPTH = 4
SIM_TH = 0.5
MAX_CHILDREN = 100

# --------------------------------------------------------------------------------------------
# Masking

_PRE: list[tuple[re.Pattern, str]] = [
    # URL: keep the scheme (Loghub: "spark://<*>", "hdfs://<*>").
    (re.compile(r"\b([A-Za-z][A-Za-z0-9+.\-]*)://[^\s\"'<>\]\)]*"), r"\1://" + _W),
    (re.compile(r"(?<![\w.+\-])[\w.+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}\b"), _W),
    (re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"), _W),
    (re.compile(r"(?<![\w:])(?:[0-9a-fA-F]{2}[:\-]){5}[0-9a-fA-F]{2}(?![\w:])"), _W),
    # ISO date / date-time (with optional fraction and zone) as one variable.
    (re.compile(r"(?<![\w.])\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?"
                r"(?:Z|[+\-]\d{2}:?\d{2})?)?(?![\w])"), _W),
    # textual date-time (syslog / ctime / HTTP dates): [Sat] Jun 18 02:08:10 [2005] -> one variable
    (re.compile(r"\b(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*,?\s+)?(?:\d{1,2}[ /\-])?"
                r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*[ /\-]+(?:\d{1,2}[ ,]+)?(?:\d{4}[ :])?"
                r"\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:\s+(?:[A-Z]{3,4}|[+\-]\d{4}))?(?:\s+\d{4})?\b"), _W),
    # a size with its unit as a separate word: "16.0 B", "413.9 MB", "2 GiB"
    (re.compile(r"(?<![\w.])\d+(?:\.\d+)?\s(?:[KMGTP]i?B|B)\b"), _W),
    # booleans are values (as in the Loghub-2.0 corrected labels)
    (re.compile(r"\b(?:true|false|True|False|TRUE|FALSE)\b"), _W),
    # dimensions 80x25, 1920x1080
    (re.compile(r"\b\d+x\d+\b"), _W),
]
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|\d{1,3}(?:\.\d{1,3}){3})?(?![\w:])")
_POST: list[tuple[re.Pattern, str]] = [
    # dotted numbers: IPv4, versions (1.2.3-rc1), decimals -> one variable.
    (re.compile(r"(?<![\w.])[vV]?\d+(?:\.\d+)+(?:[\-+~._][0-9A-Za-z]+)*(?![\w])"), _W),
    # number with a unit glued on: 150ms, 1.5s, 4GB, 80%, 2k
    (re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:[A-Za-z\u00b5]{1,3}|%)(?![\w])"), _W),
    # identifiers with an underscore-joined number part: blk_-123, rdd_4_2, attempt_1_m_2
    (re.compile(r"(?<![\w\-])[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)*_-?\d+(?:_[A-Za-z0-9]+)*(?![\w])"), _W),
    (re.compile(r"\b0[xX][0-9a-fA-F]+\b"), _W),
]
_PATH_SPLIT = re.compile(r"([,;:=|\"'\[\](){}<>])")
_PATH = re.compile(r"^(?:~|\.{1,2})?(?:/[^/\s]+)+/?$")
_SPLIT = re.compile(r"([,;:=|\"'\[\](){}<>/#@.+\-&$%!?*~^\\])")
_HEX = re.compile(r"^[0-9a-fA-F]{8,}$")
_DIGIT = re.compile(r"\d")
_ALPHA = re.compile(r"[A-Za-z]")
_JOIN = re.compile(_W + r"(?:[.\-]?" + _W + r")+")
_SIGN = re.compile(r"(?:(?<=^)|(?<=[\s(\[=:,]))[-+]" + _W)


def _ipv6(m: re.Match) -> str:
    s = m.group(0)
    return _W if ("::" in s or s.count(":") >= 5) and len(s) > 2 else s


def _piece(p: str) -> str:
    if p.isdigit():
        return _W
    if _HEX.match(p) and _DIGIT.search(p):
        return _W
    if len(p) >= 16 and _ALPHA.search(p) and len(_DIGIT.findall(p)) >= 2 and p.isalnum():
        return _W
    return p


def _mask_token(tok: str) -> str:
    if "/" in tok:
        tok = "".join(_W if _PATH.match(p) else p for p in _PATH_SPLIT.split(tok))
    if _DIGIT.search(tok) or len(tok) >= 16:
        tok = "".join(_piece(p) for p in _SPLIT.split(tok))
    if _W in tok:
        tok = _JOIN.sub(_W, tok)
        tok = _SIGN.sub(_W, tok)
    return tok


# cheap guards: a pattern only runs when the text can contain a match (3x faster on real logs)
# (guard, needs a digit) per _PRE pattern
_PRE_GUARDS = ((lambda t: "://" in t, False), (lambda t: "@" in t, False), (lambda t: "-" in t, True),
               (lambda t: ":" in t or "-" in t, True), (lambda t: "-" in t, True), (lambda t: ":" in t, True),
               (lambda t: "B" in t, True), (lambda t: "rue" in t or "alse" in t or "RUE" in t or "ALSE" in t, False),
               (lambda t: "x" in t, True))
_POST_GUARDS = (lambda t: "." in t, lambda t: True, lambda t: "_" in t, lambda t: "0x" in t or "0X" in t)


def mask(text: str) -> str:
    """Replace generic variables by `<*>` (see module doc); whitespace is normalised."""
    digits = _DIGIT.search(text) is not None
    for (rx, rep), (guard, needs_digit) in zip(_PRE, _PRE_GUARDS):
        if (digits or not needs_digit) and guard(text):
            text = rx.sub(rep, text)
    if text.count(":") >= 2:
        text = _IPV6.sub(_ipv6, text)
    if digits:
        for (rx, rep), guard in zip(_POST, _POST_GUARDS):
            if guard(text):
                text = rx.sub(rep, text)
    return " ".join(_mask_token(t) for t in text.split()).replace(_W, WILDCARD)


# --------------------------------------------------------------------------------------------
# JSON lines and trace ids

_MSG_KEYS = ("msg", "message", "log")
_LEVEL_KEYS = ("level", "lvl", "severity", "levelname")
_TRACE_KEYS = ("trace_id", "traceId", "traceID", "trace.id", "trace")
_TRACE_RX = re.compile(
    r"(?i)(?:\btrace[_.\-]?id|\btrace)[\"']?\s*[:=]\s*[\"']?([0-9a-f]{32}|[0-9a-f]{16})(?![0-9a-f])"
    r"|\btraceparent[\"']?\s*[:=]\s*[\"']?[0-9a-f]{2}-([0-9a-f]{32})-")


def _json(line: str) -> dict | None:
    s = line.strip()
    if not (s.startswith("{") and s.endswith("}")):
        return None
    try:
        obj = json.loads(s)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def message_of(line: str) -> str:
    """The text that is mined for a line: for a JSON object with a message field,
    `"[<level>] <message>"` (or just the message when there is no level); else the line."""
    obj = _json(line)
    if obj is None:
        return line
    msg = next((obj[k] for k in _MSG_KEYS if isinstance(obj.get(k), str)), None)
    if msg is None:
        return line
    level = next((obj[k] for k in _LEVEL_KEYS if isinstance(obj.get(k), str | int)), None)
    return f"[{str(level).lower()}] {msg}" if level is not None else msg


def extract_trace_ids(line: str) -> list[str]:
    """Trace ids (32 or 16 hex digits) in a line: JSON fields trace_id/traceId/traceID, or
    `trace_id=...`, `traceID: ...`, `"trace_id": "..."`, `traceparent=00-<id>-...` in text."""
    out: list[str] = []
    obj = _json(line)
    if obj is not None:
        for k in _TRACE_KEYS:
            v = obj.get(k)
            if isinstance(v, str) and re.fullmatch(r"[0-9a-fA-F]{32}|[0-9a-fA-F]{16}", v):
                out.append(v.lower())
    for m in _TRACE_RX.finditer(line):
        tid = (m.group(1) or m.group(2)).lower()
        if tid not in out:
            out.append(tid)
    return out


# --------------------------------------------------------------------------------------------
# Clustering


class _Drain(Drain):
    """drain3 Drain where a position that is a wildcard in both the template and the (masked)
    message is neutral in the similarity (left out of numerator and denominator)."""

    def get_seq_distance(self, seq1, seq2, include_params: bool):
        sim = params = masked = 0
        p = self.param_str
        for t, m in zip(seq1, seq2):
            if m == p and t == p:
                masked += 1
            elif t == p:
                params += 1
            elif t == m:
                sim += 1
        n = len(seq1) - masked
        if include_params:
            sim += params
        return (sim / n if n else 1.0), params


_BOUNDARY = re.compile(r"[^A-Za-z0-9_.\-\ue000]")  # "-", ".", "_" join words (host-12)


def _common_prefix(a: str, b: str) -> str:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return a[:i]


def _common_suffix(a: str, b: str) -> str:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[-1 - i] == b[-1 - i]:
        i += 1
    return a[len(a) - i:]


class _Position:
    __slots__ = ("first", "varies", "prefix", "suffix", "minlen")

    def __init__(self, value: str):
        self.first = value
        self.minlen = len(value)
        self.varies = False
        self.prefix = value
        self.suffix = value

    def add(self, value: str) -> None:
        if value != self.first:
            self.varies = True
        self.minlen = min(self.minlen, len(value))
        self.prefix = _common_prefix(self.prefix, value)
        self.suffix = _common_suffix(self.suffix, value)

    def render(self) -> str:
        if not self.varies:
            return self.first.replace(_W, WILDCARD)
        pre, suf = self.prefix, self.suffix
        # keep a common prefix/suffix only up to (and including) punctuation: "user=", "(", "'"
        cut = max((m.end() for m in _BOUNDARY.finditer(pre)), default=0)
        pre = pre[:cut]
        starts = [m.start() for m in _BOUNDARY.finditer(suf)]
        suf = suf[starts[0]:] if starts else ""
        if len(pre) + len(suf) > self.minlen:
            suf = ""
        return (pre + _W + suf).replace(_W, WILDCARD)


_RUNS = re.compile(r"<\*>(?: <\*>)+")
_COLLAPSE = re.compile(r"<\*>(?:[.\-]?<\*>)+")


_WORD = re.compile(r"^(?:[A-Za-z][A-Za-z.\-_]*)?$")


def _core(value: str, pre: str, suf: str) -> str:
    return value[len(pre):len(value) - len(suf)] if len(pre) + len(suf) <= len(value) else value


def _render(rows: list[list[str]]) -> str:
    positions = [_Position(t) for t in rows[0]]
    for row in rows[1:]:
        for p, t in zip(positions, row):
            p.add(t)
    return _COLLAPSE.sub(WILDCARD, " ".join(p.render() for p in positions))


def _split_positions(rows: list[list[str]]) -> list[int]:
    """Positions to re-split a cluster on: exactly two distinct values, whose differing cores
    are plain words (or empty), or one a plain word and the other not empty - a closed choice
    like startup/shutdown, view/modify, reserved/usable is part of the message, not a variable.
    Three or more distinct values (user names ...) stay a variable."""
    out = []
    for i in range(len(rows[0])):
        values = {r[i] for r in rows}
        if len(values) != 2:
            continue
        a, b = sorted(values)
        pos = _Position(a)
        pos.add(b)
        rendered = pos.render()
        pre, _, suf = rendered.partition(WILDCARD)
        pre, suf = pre.replace(WILDCARD, _W), suf.replace(WILDCARD, _W)
        words = [bool(_WORD.match(c)) and _W not in c for c in (_core(a, pre, suf), _core(b, pre, suf))]
        if all(words) or (any(words) and any(_core(v, pre, suf) for v in (a, b) if not _WORD.match(v))):
            out.append(i)
    return out


class LogMiner:
    """Streaming miner: `add(line) -> key` (the masked message); `templates()` maps every key to
    its final, post-processed template (computed over everything added so far).
    Deterministic for a given input order."""

    def __init__(self) -> None:
        self.drain = _Drain(depth=DEPTH, sim_th=SIM_TH, max_children=MAX_CHILDREN, parametrize_numeric_tokens=True)
        self._seen: dict[str, int] = {}  # masked text -> drain cluster id
        self._members: dict[int, list[str]] = {}  # cluster id -> distinct masked texts
        self._cache: dict[str, str] | None = None

    def add(self, line: str) -> str:
        masked = mask(message_of(line))
        if masked in self._seen:
            return masked
        cluster, _ = self.drain.add_log_message(masked)
        self._seen[masked] = cluster.cluster_id
        self._members.setdefault(cluster.cluster_id, []).append(masked)
        self._cache = None
        return masked

    def templates(self) -> dict[str, str]:
        if self._cache is None:
            cache: dict[str, str] = {}
            for members in self._members.values():
                rows = [m.replace(WILDCARD, _W).split() for m in members]
                if not rows[0]:
                    for m in members:
                        cache[m] = ""
                    continue
                split = _split_positions(rows) if len(rows) > 1 else []
                groups: dict[tuple, list[int]] = {}
                for j, r in enumerate(rows):
                    groups.setdefault(tuple(r[i] for i in split), []).append(j)
                for idx in groups.values():
                    template = _render([rows[j] for j in idx])
                    for j in idx:
                        cache[members[j]] = template
            # templates that differ only in the length of runs of wildcards are one template
            # (variable-length lists: "delete <*> <*> <*>" / "delete <*>"), written with one <*>
            by_key: dict[str, set[str]] = {}
            for t in cache.values():
                by_key.setdefault(_RUNS.sub(WILDCARD, t), set()).add(t)
            remap = {t: key for key, ts in by_key.items() if len(ts) > 1 for t in ts}
            if remap:
                cache = {m: remap.get(t, t) for m, t in cache.items()}
            self._cache = cache
        return self._cache

    def template(self, key: str) -> str:
        return self.templates()[key]


def mine(lines: Sequence[str]) -> list[str]:
    """One template per line, same order (templates are final: computed after all lines)."""
    miner = LogMiner()
    ids = [miner.add(line) for line in lines]
    t = miner.templates()
    return [t[i] for i in ids]


# --------------------------------------------------------------------------------------------
# Window comparison


@dataclass
class TemplateStat:
    template: str
    count: int
    baseline_count: int
    first_seen: float | None
    examples: list[str] = field(default_factory=list)
    trace_ids: list[str] = field(default_factory=list)
    new: bool = False
    rate_ratio: float = 0.0
    score: float = 0.0


def compare_windows(
    window: Sequence[tuple[float, str]],
    baseline: Sequence[tuple[float, str]],
    *,
    window_seconds: float,
    baseline_seconds: float,
    max_templates: int = 20,
    max_examples: int = 3,
    min_count: int = 3,
    min_ratio: float = 1.5,
    alpha: float = 0.01,
) -> list[TemplateStat]:
    """Templates new in `window` or whose rate rose significantly versus `baseline`.

    Both windows are mined with one miner (baseline lines first). For a template with `c`
    window lines and `b` baseline lines, under H0 (same rate in both) `c ~ Binomial(c + b,
    w / (w + B))` with w, B the window/baseline lengths; the one-sided p-value is
    `P(X >= c)`. Reported: every template with `b == 0` ("new"), and templates with
    `c >= min_count`, `rate_ratio >= min_ratio` and p below `alpha` / number of window
    templates (Bonferroni). `rate_ratio = (c / w) / ((b + 0.5) / B)` (finite for new ones).
    `score = -log10(p)`; with no baseline at all (B == 0) every template is new and the score
    is log10(1 + c). Ordered by score, then count, then template; at most `max_templates`,
    each with at most `max_examples` example lines and 5 trace ids.
    """
    from scipy.stats import binom

    miner = LogMiner()
    base_counts: dict[int, int] = {}
    for _, line in baseline:
        cid = miner.add(line)
        base_counts[cid] = base_counts.get(cid, 0) + 1
    win: dict[int, list] = {}  # cid -> [count, first_seen, examples, trace ids]
    for ts, line in window:
        cid = miner.add(line)
        st = win.get(cid)
        if st is None:
            st = win[cid] = [0, ts, [], []]
        st[0] += 1
        if ts is not None and (st[1] is None or ts < st[1]):
            st[1] = ts
        if len(st[2]) < max_examples and line not in st[2]:
            st[2].append(line)
        if len(st[3]) < 5 and ("trace" in line or "Trace" in line):
            for tid in extract_trace_ids(line):
                if tid not in st[3] and len(st[3]) < 5:
                    st[3].append(tid)
    templates = miner.templates()

    # aggregate clusters that ended with the same template
    agg: dict[str, list] = {}
    for cid, (c, first, ex, tids) in win.items():
        a = agg.setdefault(templates[cid], [0, 0, None, [], [], set()])
        a[0] += c
        a[5].add(cid)
        if first is not None and (a[2] is None or first < a[2]):
            a[2] = first
        a[3].extend(e for e in ex if len(a[3]) < max_examples and e not in a[3])
        a[4].extend(t for t in tids if len(a[4]) < 5 and t not in a[4])
    base_by_template: dict[str, int] = {}
    for cid, b in base_counts.items():
        base_by_template[templates[cid]] = base_by_template.get(templates[cid], 0) + b

    w = max(float(window_seconds), 1e-9)
    bsec = max(float(baseline_seconds), 0.0)
    tested = max(1, len(agg))
    log_alpha = math.log(alpha / tested)
    out: list[TemplateStat] = []
    for template, (c, _b, first, ex, tids, _cids) in agg.items():
        b = base_by_template.get(template, 0)
        new = b == 0
        if bsec <= 0 or not baseline:
            ratio, score, significant = float(c), math.log10(1 + c), True
        else:
            p0 = w / (w + bsec)
            logp = float(binom.logsf(c - 1, c + b, p0))
            if not math.isfinite(logp):  # underflow: P(X >= c) >= P(X = c), a finite stand-in
                logp = float(binom.logpmf(c, c + b, p0))
            ratio = (c / w) / ((b + 0.5) / bsec)
            score = max(0.0, -logp / math.log(10))
            significant = c >= min_count and ratio >= min_ratio and logp < log_alpha
        if new or significant:
            out.append(TemplateStat(template=template, count=c, baseline_count=b, first_seen=first,
                                    examples=ex[:max_examples], trace_ids=tids[:5], new=new,
                                    rate_ratio=round(ratio, 4), score=round(score, 4)))
    out.sort(key=lambda s: (-s.score, -s.count, s.template))
    return out[:max_templates]

