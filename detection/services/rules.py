"""Rule writes: create, edit, enable, disable and delete detection rules.

Each publishes `detection.updated` after commit; disabling or deleting a rule first retires its
active alerts, so that their incidents can still recover.
"""
from __future__ import annotations

import copy

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from incidents.events import publish

from .. import evaluation
from ..models import DetectionRule
from .alert_state import _retire_alerts
from .rule_evaluation import HEALTH_FIELDS

RULE_FIELDS = tuple(
    f.name for f in DetectionRule._meta.concrete_fields
    if f.editable and f.name not in {"id", *HEALTH_FIELDS, "next_evaluation_at", "created_at", "updated_at"}
)


def _rule_event(rule: DetectionRule, change: str) -> None:
    publish("detection.updated", {"rule": rule.pk, "name": rule.name, "change": change, "enabled": rule.enabled})


def _check_rule_fields(fields: dict) -> None:
    unknown = set(fields) - set(RULE_FIELDS)
    if unknown:
        raise ValidationError({field: "cannot be set here" for field in sorted(unknown)})


def create_rule(*, check_source: bool = True, user=None, **fields) -> DetectionRule:
    """Add a detection rule. Validated (and, with `check_source`, its query checked by its source,
    whose message is returned on refusal); publishes `detection.updated` after commit."""
    _check_rule_fields(fields)
    rule = DetectionRule(**fields)
    rule.full_clean()
    if check_source:
        check_rule_source(rule)
    with transaction.atomic():
        rule.save(force_insert=True)
        _rule_event(rule, "created")
    return rule


def update_rule(*, rule: DetectionRule, check_source: bool = True, user=None, **changes) -> DetectionRule:
    """Edit a rule. Disabling it resolves its active alerts (their incidents can then recover);
    enabling it schedules an evaluation now."""
    _check_rule_fields(changes)
    current = DetectionRule.objects.get(pk=rule.pk)
    draft = copy.copy(current)
    for field, value in changes.items():
        setattr(draft, field, value)
    draft.full_clean()
    # Ask the source only when what it is asked changes: an outage must not stop anyone from
    # disabling a noisy rule. Outside the transaction: it is an HTTP call.
    if check_source and any(getattr(draft, f) != getattr(current, f) for f in ("kind", "query")):
        check_rule_source(draft)
    now = timezone.now()
    with transaction.atomic():
        locked = DetectionRule.objects.select_for_update().get(pk=rule.pk)
        was_enabled = locked.enabled
        for field, value in changes.items():
            setattr(locked, field, value)
        if was_enabled and not locked.enabled:
            _retire_alerts(locked.alerts.all(), now=now, reason="its rule was disabled")
        elif locked.enabled and not was_enabled:
            locked.next_evaluation_at = now
        locked.save()
        _rule_event(locked, "updated")
    return locked


def enable_rule(*, rule: DetectionRule, user=None) -> DetectionRule:
    return update_rule(rule=rule, enabled=True, check_source=False, user=user)


def disable_rule(*, rule: DetectionRule, user=None) -> DetectionRule:
    """Stop evaluating a rule; its pending and firing alerts resolve now, saying why."""
    return update_rule(rule=rule, enabled=False, check_source=False, user=user)


def delete_rule(*, rule: DetectionRule, user=None) -> None:
    """Delete a rule. Its active alerts resolve first (with a timeline entry); the alerts stay,
    detached, as their incidents' evidence."""
    with transaction.atomic():
        locked = DetectionRule.objects.select_for_update().get(pk=rule.pk)
        _retire_alerts(locked.alerts.all(), now=timezone.now(), reason="its rule was deleted")
        pk, name = locked.pk, locked.name
        locked.delete()
        publish("detection.updated", {"rule": pk, "name": name, "change": "deleted", "enabled": False})



def validate_rule(rule: DetectionRule) -> None:
    """Field checks, then ask the rule's source whether the query is valid (its message if not)."""
    rule.full_clean()
    check_rule_source(rule)


def check_rule_source(rule: DetectionRule) -> None:
    """Raise ValidationError on `query` with the source's own message when it refuses the query."""
    try:
        evaluation.validate_rule_source(rule)
    except ValueError as exc:
        raise ValidationError({"query": f"the source refused this query: {exc}"}) from None

