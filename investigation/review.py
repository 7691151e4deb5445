"""The post-incident review: generated from what is stored, edited by responders, exported.

`generate_review(incident)` writes every section from rows only — the timeline, the evidence
snapshots of the latest complete run, the confirmed cause, the durations, the impact and the tasks —
so a review stays complete after the telemetry's retention has expired: nothing here queries
Prometheus, Loki, Tempo or Kubernetes. A responder's edit of a section (`edit_review`) is stored in
`Review.edited` and wins over the generated text; generating again rewrites `generated` only and
never an edit. `review_markdown` and `review_document` are the Markdown and JSON exports.
"""
from __future__ import annotations

import html
import re
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.safestring import mark_safe

from incidents import selectors as incident_selectors
from incidents.models import Incident

from . import selectors
from .models import EvidenceStatus, HypothesisStatus, Review

# Section name → title, in the order the review reads.
SECTIONS = (
    ("summary", "Summary"),
    ("impact", "Impact"),
    ("timeline", "Timeline"),
    ("root_cause", "Root cause"),
    ("evidence", "Evidence"),
    ("detection", "Detection"),
    ("response", "Response"),
    ("action_items", "Action items"),
    ("lessons", "Lessons learned"),
)
SECTION_NAMES = tuple(name for name, _title in SECTIONS)
SECTION_TITLES = dict(SECTIONS)
MAX_SECTION_CHARS = 20_000
MAX_TIMELINE_ENTRIES = 300
MAX_EVIDENCE_ITEMS = 25


# --- formatting ----------------------------------------------------------------------------------

def _duration(value: timedelta | None) -> str:
    if value is None:
        return "not reached"
    seconds = max(int(value.total_seconds()), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {seconds:02d}s"
    if minutes:
        return f"{minutes}m {seconds:02d}s"
    return f"{seconds}s"


def _at(value: datetime | None) -> str:
    return timezone.localtime(value, timezone.get_fixed_timezone(0)).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "—"


def _clock(value: datetime | None) -> str:
    return timezone.localtime(value, timezone.get_fixed_timezone(0)).strftime("%H:%M:%S") if value else "—"


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _code(text: str) -> str:
    text = _one_line(text, 2000).replace("`", "'")
    return f"`{text}`"


def durations(incident: Incident) -> dict[str, timedelta | None]:
    return {
        "time_to_detect": incident.time_to_detect,
        "time_to_acknowledge": incident.time_to_acknowledge,
        "time_to_mitigate": incident.time_to_mitigate,
        "time_to_resolve": incident.time_to_resolve,
    }


# --- the sections ----------------------------------------------------------------------------------

def _summary(incident, run, cause) -> str:
    lines = []
    text = (incident.summary or "").strip() or (run.summary if run else "").strip()
    if text:
        lines.append(text)
    facts = (f"{incident.key} “{incident.title}”: {incident.get_severity_display().lower()} severity"
             f"{', on ' + incident.primary_service.slug if incident.primary_service else ''}, "
             f"started {_at(incident.started_at)}, ")
    facts += f"resolved {_at(incident.resolved_at)} after {_duration(incident.time_to_resolve)}." if incident.resolved_at \
        else f"still {incident.get_status_display().lower()}."
    lines.append(facts)
    if cause:
        lines.append(f"Confirmed cause: {cause.title} ({cause.service}).")
    return "\n\n".join(lines)


def _impact(incident, run) -> tuple[str, dict]:
    lines, data = [], {}
    if (incident.impact or "").strip():
        lines.append(incident.impact.strip())
    impact = run.impact if run and isinstance(run.impact, dict) else {}
    services = [s if isinstance(s, str) else (s.get("slug") or s.get("service")) for s in impact.get("services") or []
                if isinstance(s, (str, dict))]
    services = [s for s in services if s]
    affected = sorted({s.slug for s in incident.affected_services.all()} | (
        {incident.primary_service.slug} if incident.primary_service else set()))
    data["services"] = services or affected
    if data["services"]:
        lines.append("- Affected services: " + ", ".join(data["services"]))
    radius = incident_selectors.incident_blast_radius(incident)
    if radius:
        data["dependents"] = [{"service": s.slug, "hops": hops} for s, hops in radius]
        lines.append("- Depending on them: " + ", ".join(f"{s.slug} ({hops} hop{'s' if hops != 1 else ''})"
                                                         for s, hops in radius))
    failed = impact.get("failed_requests")
    if isinstance(failed, (int, float)) and not isinstance(failed, bool):
        data["failed_requests"] = failed
        lines.append(f"- Failed requests: about {failed:,.0f}")
        if impact.get("failed_requests_query"):
            data["failed_requests_query"] = str(impact["failed_requests_query"])
            lines.append(f"  - measured with {_code(impact['failed_requests_query'])}")
    slos = [s for s in impact.get("slos") or [] if isinstance(s, (dict, str))]
    if slos:
        data["slos"] = slos
        for slo in slos:
            if isinstance(slo, str):
                lines.append(f"- SLO {slo}")
            else:
                name = slo.get("name") or slo.get("slo") or slo.get("slug") or "SLO"
                facts = ", ".join(f"{k} {v}" for k, v in slo.items() if k not in ("name", "slo", "slug")
                                  and isinstance(v, (str, int, float)) and not isinstance(v, bool))
                lines.append(f"- SLO {name}" + (f": {facts}" if facts else ""))
    if not lines:
        lines.append("Impact not assessed.")
    return "\n".join(lines), data


def _timeline(incident) -> str:
    events = list(incident.timeline.order_by("occurred_at", "id")[: MAX_TIMELINE_ENTRIES + 1])
    lines = [f"- {_at(e.occurred_at)} · {e.get_kind_display()} · {_one_line(e.message)}"
             + (f" ({e.actor})" if e.actor else "") for e in events[:MAX_TIMELINE_ENTRIES]]
    if len(events) > MAX_TIMELINE_ENTRIES:
        lines.append(f"- … more entries on the incident page (the first {MAX_TIMELINE_ENTRIES} are listed)")
    return "\n".join(lines) or "Nothing on the timeline."


def _root_cause(incident, cause, standing) -> tuple[str, dict]:
    if cause:
        lines = [f"**{cause.title}** — {cause.get_kind_display().lower()} in {cause.service} "
                 f"(confidence {cause.confidence:.0%}"
                 + (f", confirmed by {cause.decided_by.get_username()}" if cause.decided_by else "")
                 + (f" at {_at(cause.decided_at)}" if cause.decided_at else "") + ")."]
        if cause.description:
            lines.append(cause.description)
        if cause.decision_note:
            lines.append(f"Note: {cause.decision_note}")
        data = {"service": cause.service, "kind": cause.kind, "title": cause.title, "confidence": cause.confidence,
                "confirmed_by": cause.decided_by.get_username() if cause.decided_by else None}
    else:
        lines, data = [], {}
        if (incident.root_cause or "").strip():
            lines.append(incident.root_cause.strip())
        else:
            lines.append("Not confirmed.")
        if standing:
            top = standing[0]
            lines.append(f"The investigation's leading hypothesis: {top.title} ({top.service}, "
                         f"confidence {top.confidence:.0%}).")
    # Confirming writes "title\n\ndescription" into incident.root_cause; only a text someone wrote
    # differently is added.
    written = (incident.root_cause or "").strip()
    if cause and written and not written.startswith(cause.title.strip()):
        lines.append(written)
    return "\n\n".join(lines), data


def _evidence(run, cause) -> tuple[str, list[dict]]:
    if run is None:
        return "No completed investigation run; no evidence was collected.", []
    items = list(run.evidence.order_by("-score", "kind", "id"))
    cause_ids = set(cause.evidence.values_list("pk", flat=True)) if cause else set()
    items.sort(key=lambda e: (e.pk not in cause_ids, -e.score, e.kind, e.pk))
    lines = [f"From investigation run {run.pk} ({run.get_trigger_display().lower()}, "
             f"{run.get_status_display().lower()}, finished {_at(run.finished_at)}). "
             "Stored snapshots; the queries can be run again while the data is retained."]
    refs = []
    for item in items:
        ref = {"id": item.pk, "kind": item.kind, "source": item.source, "service": item.service,
               "status": item.status, "finding": item.finding, "query": item.query, "explore_url": item.explore_url,
               "score": item.score, "supports_cause": item.pk in cause_ids}
        refs.append(ref)
        if len(refs) > MAX_EVIDENCE_ITEMS:
            continue
        if item.status == EvidenceStatus.OK and (item.score > 0 or item.pk in cause_ids):
            where = f"{item.get_kind_display()}, {item.service}" if item.service else item.get_kind_display()
            line = f"- {where}: {_one_line(item.finding) or 'collected'}"
            if item.query:
                line += f" — {_code(item.query)}"
            if item.explore_url:
                line += f" ([Explore]({item.explore_url}))"
            lines.append(line)
        elif item.status != EvidenceStatus.OK and item.status != EvidenceStatus.NO_DATA:
            lines.append(f"- {item.get_kind_display()}{', ' + item.service if item.service else ''}: "
                         f"{_one_line(item.finding) if item.finding else item.get_status_display().lower()}")
    if len(lines) == 1:
        lines.append("- Nothing unusual was found in the collected data.")
    return "\n".join(lines), refs[:200]


def _detection(incident) -> tuple[str, list[dict]]:
    lines = [f"Source: {incident.get_source_display()}. Detected {_at(incident.detected_at)}, "
             f"{_duration(incident.time_to_detect)} after the problem started ({_at(incident.started_at)})."]
    alerts = []
    for alert in incident_selectors.incident_review_alerts(incident):
        origin = f"rule {alert.rule.name}" if alert.rule_id else (f"source {alert.source.name}" if alert.source_id else "")
        alerts.append({"name": alert.name, "origin": origin, "service": alert.service.slug if alert.service_id else "",
                       "first_firing": alert.first_firing.isoformat() if alert.first_firing else None,
                       "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None})
        lines.append(f"- {alert.name}" + (f" ({origin})" if origin else "")
                     + (f" on {alert.service.slug}" if alert.service_id else "")
                     + f": first firing {_at(alert.first_firing)}, resolved {_at(alert.resolved_at)}")
    if not alerts:
        lines.append("- No alert belonged to this incident (opened by hand or through the API).")
    return "\n".join(lines), alerts


def _response(incident, decided) -> str:
    if incident.acknowledged_at:
        ack = f"acknowledged {_at(incident.acknowledged_at)}, {_duration(incident.time_to_acknowledge)} after detection"
    elif incident.resolved_at:
        ack = "resolved without acknowledgement"
    else:
        ack = "not acknowledged"
    lines = [f"- Commander: {incident.commander.get_username() if incident.commander else 'unassigned'}",
             f"- Acknowledgement: {ack}",
             f"- Mitigated: {_at(incident.mitigated_at) if getattr(incident, 'mitigated_at', None) else 'not recorded'}"
             f" ({_duration(incident.time_to_mitigate)} from the start)",
             f"- Resolved: {_at(incident.resolved_at)} ({_duration(incident.time_to_resolve)} from the start)"]
    if incident.reopened_count:
        lines.append(f"- Reopened {incident.reopened_count}×")
    for h in decided:
        who = h.decided_by.get_username() if h.decided_by else "someone"
        lines.append(f"- Hypothesis “{h.title}” {h.get_status_display().lower()} by {who} at {_at(h.decided_at)}"
                     + (f": {_one_line(h.decision_note)}" if h.decision_note else ""))
    return "\n".join(lines)


def _action_items(incident) -> tuple[str, list[dict]]:
    tasks = list(incident.tasks.select_related("owner"))
    items = [{"title": t.title, "done": t.done, "owner": t.owner.get_username() if t.owner else None,
              "due_at": t.due_at.isoformat() if t.due_at else None} for t in tasks]
    lines = [f"- [{'x' if t['done'] else ' '}] {t['title']}" + (f" ({t['owner']})" if t["owner"] else "")
             + (f", due {t['due_at'][:10]}" if t["due_at"] else "") for t in items]
    return "\n".join(lines) or "No action items recorded.", items


def _lessons(incident, cause) -> str:
    prompts = ["What went well?", "What went wrong?", "Where did we get lucky?"]
    observed = []
    if incident.time_to_detect > timedelta(minutes=5):
        observed.append(f"Detection took {_duration(incident.time_to_detect)}: could an earlier signal have caught it?")
    if not incident.acknowledged_at:
        observed.append("Nobody acknowledged the incident: check the paging and on-call routing.")
    if not cause:
        observed.append("No hypothesis was confirmed: record the cause once it is known.")
    text = "To be written by the responders.\n\n" + "\n".join(f"- {p}" for p in prompts)
    if observed:
        text += "\n\nObserved by the generator:\n" + "\n".join(f"- {o}" for o in observed)
    return text


def build_sections(incident: Incident) -> dict:
    """The generated content: Markdown text per section, and `data` (facts for the JSON export)."""
    incident = Incident.objects.select_related("primary_service", "commander").get(pk=incident.pk)
    run = selectors.latest_complete_run(incident)
    cause = selectors.confirmed_hypothesis(incident)
    standing, rejected = selectors.ranked_hypotheses(incident)
    decided = sorted([h for h in standing + rejected if h.status != HypothesisStatus.PROPOSED and h.decided_at],
                     key=lambda h: h.decided_at)
    impact_text, impact_data = _impact(incident, run)
    cause_text, cause_data = _root_cause(incident, cause, standing)
    evidence_text, evidence_refs = _evidence(run, cause)
    detection_text, alerts = _detection(incident)
    tasks_text, tasks = _action_items(incident)
    generated = {
        "summary": _summary(incident, run, cause),
        "impact": impact_text,
        "timeline": _timeline(incident),
        "root_cause": cause_text,
        "evidence": evidence_text,
        "detection": detection_text,
        "response": _response(incident, decided),
        "action_items": tasks_text,
        "lessons": _lessons(incident, cause),
    }
    generated["data"] = {
        "incident": {"key": incident.key, "title": incident.title, "severity": incident.severity,
                     "status": incident.status, "primary_service": incident.primary_service.slug
                     if incident.primary_service else None,
                     "started_at": incident.started_at.isoformat(), "detected_at": incident.detected_at.isoformat(),
                     "acknowledged_at": incident.acknowledged_at.isoformat() if incident.acknowledged_at else None,
                     "resolved_at": incident.resolved_at.isoformat() if incident.resolved_at else None},
        "durations_seconds": {k: (v.total_seconds() if v is not None else None) for k, v in durations(incident).items()},
        "run": {"id": run.pk, "status": run.status, "finished_at": run.finished_at.isoformat() if run.finished_at else None}
        if run else None,
        "root_cause": cause_data or None,
        "impact": impact_data,
        "evidence": evidence_refs,
        "alerts": alerts,
        "action_items": tasks,
    }
    return generated


# --- writes ----------------------------------------------------------------------------------------

def generate_review(incident: Incident) -> Review:
    """(Re)generate the review of `incident` from stored data; responders' edits are kept.

    Safe to call again and concurrently (the resolve hook and a page view): only `generated` and
    `generated_at` are written, never `edited`."""
    generated = build_sections(incident)
    now = timezone.now()
    with transaction.atomic():
        review, created = Review.objects.get_or_create(incident=incident, defaults={"generated": generated,
                                                                                   "generated_at": now})
        if not created:
            Review.objects.filter(pk=review.pk).update(generated=generated, generated_at=now)
            review.generated, review.generated_at = generated, now
    return review


def get_or_generate_review(incident: Incident) -> Review:
    review = Review.objects.filter(incident=incident).select_related("edited_by").first()
    return review if review is not None and review.generated else generate_review(incident)


def edit_review(*, review: Review, sections: dict, user) -> Review:
    """Store responders' text for `sections` ({name: text}; None restores the generated text).

    Raises ValidationError for an unknown section or a text that is not a string or too long."""
    errors = {}
    for name, text in sections.items():
        if name not in SECTION_NAMES:
            errors[name] = [f"Unknown section {name!r}; expected one of {', '.join(SECTION_NAMES)}."]
        elif text is not None and not isinstance(text, str):
            errors[name] = ["A section's text must be a string (or null to restore the generated text)."]
        elif text is not None and len(text) > MAX_SECTION_CHARS:
            errors[name] = [f"At most {MAX_SECTION_CHARS} characters."]
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        locked = Review.objects.select_for_update().get(pk=review.pk)
        edited = dict(locked.edited or {})
        for name, text in sections.items():
            if text is None:
                edited.pop(name, None)
            else:
                edited[name] = text.replace("\r\n", "\n")
        locked.edited, locked.edited_at, locked.edited_by = edited, timezone.now(), user
        locked.save(update_fields=["edited", "edited_at", "edited_by"])
    return locked


# --- reads / exports ---------------------------------------------------------------------------------

def section_views(review: Review) -> list[dict]:
    views = []
    for name, title in SECTIONS:
        text = review.section(name)
        text = text if isinstance(text, str) else ""
        views.append({"name": name, "title": title, "text": text, "html": markdown_html(text),
                      "edited": name in (review.edited or {}), "generated": review.generated.get(name, "")})
    return views


def review_markdown(review: Review) -> str:
    incident = review.incident
    lines = [f"# {incident.key} {incident.title} — post-incident review", ""]
    facts = [("Severity", incident.get_severity_display()), ("Status", incident.get_status_display()),
             ("Service", incident.primary_service.slug if incident.primary_service else "—"),
             ("Started", _at(incident.started_at)), ("Resolved", _at(incident.resolved_at))]
    for label, value in durations(incident).items():
        facts.append((label.replace("_", " ").capitalize(), _duration(value)))
    lines += ["| | |", "| --- | --- |"] + [f"| {label} | {value} |" for label, value in facts] + [""]
    for view in section_views(review):
        lines += [f"## {view['title']}", "", view["text"].strip() or "—", ""]
    stamp = f"Generated {_at(review.generated_at)}"
    if review.edited_at:
        stamp += f"; edited {_at(review.edited_at)}" + (f" by {review.edited_by.get_username()}" if review.edited_by else "")
    lines += ["---", f"_{stamp}._", ""]
    return "\n".join(lines)


def review_document(review: Review) -> dict:
    return {
        "incident": review.incident.key,
        "generated_at": review.generated_at.isoformat() if review.generated_at else None,
        "edited_at": review.edited_at.isoformat() if review.edited_at else None,
        "edited_by": review.edited_by.get_username() if review.edited_by else None,
        "sections": {v["name"]: {"title": v["title"], "text": v["text"], "edited": v["edited"],
                                 "generated": v["generated"]} for v in section_views(review)},
        "data": review.generated.get("data", {}),
    }


# A small, safe Markdown subset for the page (paragraphs, bullet lists, **bold**, `code`, links):
# everything is escaped first, so a section's text can never inject markup.
_INLINE = (
    (re.compile(r"`([^`]+)`"), r"<code>\1</code>"),
    (re.compile(r"\*\*([^*]+)\*\*"), r"<strong>\1</strong>"),
    (re.compile(r"\[([^\]]+)\]\(((?:https?://|/)[^)\s]+)\)"), r'<a href="\2" target="_blank" rel="noopener">\1</a>'),
)
_BULLET = re.compile(r"^(\s*)(?:[-*]|\d+\.)\s+(.*)$")
_CHECK = re.compile(r"^\[([ xX])\]\s+(.*)$")


def _inline(text: str) -> str:
    out = html.escape(text, quote=True)
    for pattern, replacement in _INLINE:
        out = pattern.sub(replacement, out)
    return out


def markdown_html(text: str) -> str:
    out: list[str] = []
    for block in re.split(r"\n\s*\n", (text or "").strip()):
        lines = [line for line in block.split("\n") if line.strip()]
        if lines and lines[0].startswith("|"):
            out.append("<pre>" + html.escape("\n".join(lines)) + "</pre>")
            continue
        paragraph: list[str] = []
        items: list[str] = []

        def flush():
            if paragraph:
                out.append("<p>" + "<br>".join(paragraph) + "</p>")
                paragraph.clear()
            if items:
                out.append("<ul>" + "".join(items) + "</ul>")
                items.clear()

        for line in lines:
            bullet = _BULLET.match(line)
            if bullet:
                if paragraph:
                    flush()
                indent, body = bullet.groups()
                check = _CHECK.match(body)
                if check:
                    body = ("☑ " if check.group(1).lower() == "x" else "☐ ") + check.group(2)
                nested = ' class="nested"' if indent else ""
                items.append(f"<li{nested}>{_inline(body)}</li>")
            elif line.startswith("#"):
                flush()
                out.append(f"<h4>{_inline(line.lstrip('#').strip())}</h4>")
            else:
                if items:
                    flush()
                paragraph.append(_inline(line))
        flush()
    return mark_safe("".join(out))  # noqa: S308 — built from escaped text only
