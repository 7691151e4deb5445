"""PromQL for SLOs: label matchers, per-SLO event counts, and batched queries over many SLOs.

Every count is `sum(increase(counter[window]))`, so the SLI over a window is a ratio of event
sums, never an average of instant percentages. One query returns both counts of a window: each
half gets a `slo_part` label (`bad` / `good` / `total`) with label_replace and they are OR-ed.

Batching: availability and latency SLOs whose selectors are equality matchers on the same label
names and the same metric share one query per window: `sum by (<those labels>)`, restricted with
a regex to the values in use. A thousand such SLOs cost one query per window, not a thousand.
"""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')
PART = "slo_part"


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str
    value: str

    def render(self) -> str:
        return f'{self.name}{self.op}"{self.value}"'


def parse_selector(text: str) -> list[Matcher]:
    """'job="shop",service="checkout"' (braces optional) → matchers; ValueError names the problem."""
    body = text.strip()
    if body.startswith("{") and body.endswith("}"):
        body = body[1:-1]
    matchers, pos = [], 0
    body = body.strip().rstrip(",")
    while pos < len(body):
        match = _MATCHER.match(body, pos)
        if not match:
            raise ValueError(f'cannot read the label matchers at {body[pos:pos + 30]!r}; '
                             'write them as name="value" separated by commas')
        matchers.append(Matcher(*match.groups()))
        pos = match.end()
    if not matchers:
        raise ValueError("no label matchers")
    return matchers


def render_selector(matchers: list[Matcher]) -> str:
    return ",".join(m.render() for m in matchers)


def regex_quote(value: str) -> str:
    """Escape for a RE2 alternative inside a double-quoted PromQL string."""
    escaped = re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", value)
    return escaped.replace("\\", "\\\\").replace('"', '\\"')


def le_values(threshold: float) -> list[str]:
    """How a bucket bound may be spelled: prometheus_client writes 1.0, others 1."""
    return sorted({f"{threshold:g}", repr(float(threshold))})


def _tag(expr: str, part: str) -> str:
    return f'label_replace({expr}, "{PART}", "{part}", "", "")'


@dataclass(frozen=True)
class Counts:
    bad: float
    total: float


# -- per SLO -----------------------------------------------------------------------------------

def slo_selectors(slo) -> dict[str, str]:
    """The series selectors of an availability or latency SLO (for export and display)."""
    sel = render_selector(parse_selector(slo.selector))
    if slo.sli_kind == "availability":
        return {"total": f"{slo.metric_name}{{{sel}}}", "bad": f"{slo.metric_name}{{{sel},{slo.error_matcher}}}"}
    le = "|".join(regex_quote(v) for v in le_values(slo.latency_threshold_seconds))
    return {"total": f"{slo.metric_name}_count{{{sel}}}", "good": f'{slo.metric_name}_bucket{{{sel},le=~"{le}"}}'}


def count_queries(slo, window: str) -> dict[str, str]:
    """Instant-query expressions for the SLO's event counts over `window` (part → PromQL)."""
    if slo.sli_kind == "custom":
        return {"good": f"sum(({slo.good_query.replace('$window', window)}))",
                "total": f"sum(({slo.total_query.replace('$window', window)}))"}
    return {part: f"sum(increase({selector}[{window}]))" for part, selector in slo_selectors(slo).items()}


def error_ratio_query(slo, window: str) -> str:
    """bad / total over `window` as one PromQL expression (recording rules, display)."""
    q = count_queries(slo, window)
    bad = q["bad"] if "bad" in q else f"({q['total']} - {q['good']})"
    return f"({bad})\n/\n({q['total']})"


def slo_query(slo, window: str) -> str:
    """One query returning the SLO's counts over `window`, each tagged with its part."""
    return "\nor\n".join(_tag(expr, part) for part, expr in count_queries(slo, window).items())


def counts_from_parts(parts: dict[str, float]) -> Counts | None:
    """Counts from a query's parts; None when the total series is absent (no data)."""
    if "total" not in parts:
        return None
    total = parts["total"]
    if "bad" in parts:
        bad = parts["bad"]
    elif "good" in parts:
        bad = total - parts["good"]
    else:
        bad = 0.0  # no failure series at all: nothing failed
    return Counts(bad=max(0.0, bad), total=max(0.0, total))


# -- batches -----------------------------------------------------------------------------------

@dataclass
class Batch:
    """SLOs answered by one query per window: `key_labels` distinguish them in the answer."""

    slos: list
    query_for: object  # callable(window) -> str
    key_labels: tuple[str, ...]
    keys: dict  # slo id -> tuple of label values (batched) ; empty for single-SLO batches
    single: bool

    def counts(self, samples, window: str) -> dict[int, Counts]:
        """Map the answer's samples to each SLO's counts (absent: no data)."""
        if self.single:
            slo = self.slos[0]
            parts = {s.labels.get(PART): s.value for s in samples if s.labels.get(PART)}
            if slo.sli_kind == "latency" and "good" not in parts and "total" in parts:
                parts["good"] = 0.0  # the bucket exists only once a request was that fast
            counts = counts_from_parts(parts)
            return {slo.pk: counts} if counts is not None else {}
        by_key: dict[tuple, dict[str, float]] = defaultdict(dict)
        for sample in samples:
            key = tuple(sample.labels.get(label, "") for label in self.key_labels)
            part = sample.labels.get(PART)
            if part == "good":
                le = sample.labels.get("le")
                by_key[key][f"good@{le}"] = by_key[key].get(f"good@{le}", 0.0) + sample.value
            elif part:
                by_key[key][part] = sample.value
        result = {}
        for slo in self.slos:
            parts = dict(by_key.get(self.keys[slo.pk], {}))
            if slo.sli_kind == "latency":
                wanted = set(le_values(slo.latency_threshold_seconds))
                goods = [v for k, v in parts.items() if k.startswith("good@") and k[5:] in wanted]
                parts = {k: v for k, v in parts.items() if not k.startswith("good@")}
                if "total" in parts:
                    parts["good"] = sum(goods)
            counts = counts_from_parts(parts)
            if counts is not None:
                result[slo.pk] = counts
        return result


def _batch_key(slo):
    if slo.sli_kind == "custom":
        return None
    try:
        matchers = parse_selector(slo.selector)
    except ValueError:
        return None
    if any(m.op != "=" for m in matchers) or len({m.name for m in matchers}) != len(matchers):
        return None
    extra = slo.error_matcher if slo.sli_kind == "availability" else ""
    return (slo.sli_kind, slo.metric_name, extra, tuple(sorted(m.name for m in matchers)))


def plan_batches(slos, *, batch: bool = True, max_batch: int = 2000) -> list[Batch]:
    """Group SLOs so that each group costs one query per window."""
    groups: dict[tuple, list] = defaultdict(list)
    batches: list[Batch] = []
    for slo in slos:
        key = _batch_key(slo) if batch else None
        if key is None:
            batches.append(Batch([slo], lambda window, slo=slo: slo_query(slo, window), (), {}, True))
        else:
            groups[key].append(slo)
    for (kind, metric, extra, names), members in groups.items():
        for start in range(0, len(members), max_batch):
            chunk = members[start:start + max_batch]
            if len(chunk) == 1:
                slo = chunk[0]
                batches.append(Batch([slo], lambda window, slo=slo: slo_query(slo, window), (), {}, True))
                continue
            batches.append(_group_batch(kind, metric, extra, names, chunk))
    return batches


def _group_batch(kind, metric, extra, names, slos) -> Batch:
    values: dict[str, set[str]] = defaultdict(set)
    keys = {}
    for slo in slos:
        labels = {m.name: m.value for m in parse_selector(slo.selector)}
        keys[slo.pk] = tuple(labels[n] for n in names)
        for name in names:
            values[name].add(labels[name])
    fixed = [f'{n}="{next(iter(values[n]))}"' for n in names if len(values[n]) == 1]
    varying = [n for n in names if len(values[n]) > 1]
    matchers = fixed + [f'{n}=~"{"|".join(regex_quote(v) for v in sorted(values[n]))}"' for n in varying]
    sel = ",".join(matchers)
    by = ", ".join(names)

    if kind == "availability":
        def query(window: str) -> str:
            total = f"sum by ({by}) (increase({metric}{{{sel}}}[{window}]))"
            bad = f"sum by ({by}) (increase({metric}{{{sel},{extra}}}[{window}]))"
            return f"{_tag(total, 'total')}\nor\n{_tag(bad, 'bad')}"
    else:
        les = sorted({v for slo in slos for v in le_values(slo.latency_threshold_seconds)})
        le = "|".join(regex_quote(v) for v in les)

        def query(window: str) -> str:
            total = f"sum by ({by}) (increase({metric}_count{{{sel}}}[{window}]))"
            good = f'sum by ({by}, le) (increase({metric}_bucket{{{sel},le=~"{le}"}}[{window}]))'
            return f"{_tag(total, 'total')}\nor\n{_tag(good, 'good')}"

    return Batch(slos, query, tuple(names), keys, False)


def interval_query(slo, seconds: int) -> str:
    """The SLO's counts over the `seconds` before the query time (incident budget impact)."""
    return slo_query(slo, f"{max(1, int(seconds))}s")
