"""Learning from responders: past confirmations and rejections re-weight rankings of similar incidents.

A record is (service, incident signature, confirmed). The signature is the incident's shape: which
services were anomalous and with what kind of evidence (e.g. "checkout:error+database:error+
frontend:error+payment:error"). When a new ranking's signature is similar to a recorded one (Jaccard
overlap of those pairs ≥ 0.5), the recorded service's score is multiplied up (confirmed) or down
(rejected), weighted by the similarity. A service confirmed as the cause of a similar incident before
gains at most x2; a rejected one keeps at least half its score - feedback nudges, it does not override.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

MAX_UP, MAX_DOWN = 2.0, 0.5
MIN_SIMILARITY = 0.5
STRENGTH = 0.5  # log-factor per fully similar vote
ANOMALOUS = 4.0


@dataclass(frozen=True)
class FeedbackRecord:
    service: str
    signature: str  # evidence_signature() of the incident's ranking
    confirmed: bool


def evidence_signature(ranking) -> str:
    """The incident's fault signature: anomalous services and their evidence kind, sorted."""
    pairs = set()
    for r in ranking:
        if max((r.signals or {}).values(), default=0.0) >= ANOMALOUS:
            pairs.add(f"{r.service}:{getattr(r, 'evidence', 'other')}")
    return "+".join(sorted(pairs))


def _pairs(signature: str) -> frozenset[str]:
    return frozenset(p for p in signature.split("+") if p)


def similarity(a: str, b: str) -> float:
    pa, pb = _pairs(a), _pairs(b)
    if not pa or not pb:
        return 0.0
    return len(pa & pb) / len(pa | pb)


class Feedback:
    """Immutable once built; `apply(ranking)` re-weights and re-sorts a ranking in place."""

    def __init__(self, records=()):
        self.records: tuple[FeedbackRecord, ...] = tuple(records)
        self._pairs = [(_pairs(r.signature), r) for r in self.records]

    def votes(self, signature: str) -> dict[str, float]:
        mine = _pairs(signature)
        out: dict[str, float] = {}
        if not mine:
            return out
        for pairs, r in self._pairs:
            if not pairs:
                continue
            sim = len(mine & pairs) / len(mine | pairs)
            if sim >= MIN_SIMILARITY:
                out[r.service] = out.get(r.service, 0.0) + (sim if r.confirmed else -sim)
        return out

    def apply(self, ranking):
        votes = self.votes(evidence_signature(ranking))
        for r in ranking:
            if r.service in votes:
                factor = min(MAX_UP, max(MAX_DOWN, math.exp(STRENGTH * votes[r.service])))
                r.score = round(r.score * factor, 4)
        ranking.sort(key=lambda r: (-r.score, r.onset if r.onset is not None else math.inf, r.service))
        return ranking
