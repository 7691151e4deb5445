"""The detection page follows values that move inside one state: detection publishes at most one
"values" event per interval (across workers), and none when nothing moved."""
import pytest
from django.core.cache import cache
from django.utils import timezone

from detection import evaluation, services
from detection.evaluation import Observation
from detection.models import DetectionRule, RuleKind
from detection.services.rule_evaluation import VALUES_EVENT_KEY
from incidents import events
from incidents.models import Severity


@pytest.fixture
def sent(monkeypatch):
    seen = []
    monkeypatch.setattr(events, "_send", lambda groups, message, incident_id=None: seen.append(message["data"]))
    cache.delete(VALUES_EVENT_KEY)
    yield seen
    cache.delete(VALUES_EVENT_KEY)


@pytest.fixture
def rule(db):
    return DetectionRule.objects.create(name="Error ratio", kind=RuleKind.THRESHOLD, query="x", threshold=0.5,
                                        severity=Severity.HIGH, for_seconds=0)


def evaluate(monkeypatch, rule, value, capture):
    monkeypatch.setattr(evaluation, "evaluate", lambda rule, now: [Observation({"service": "payment"}, value, False)])
    with capture(execute=True):  # events leave after commit
        services.evaluate_rules(rules=[rule], now=timezone.now())


def test_a_moving_value_sends_one_values_event_per_interval(rule, sent, monkeypatch, settings,
                                                            django_capture_on_commit_callbacks):
    settings.DETECTION_VALUES_EVENT_SECONDS = 60
    evaluate(monkeypatch, rule, 0.01, django_capture_on_commit_callbacks)
    assert [e.get("health") for e in sent] == ["ok"]  # the health event already refreshes the page
    sent.clear()
    evaluate(monkeypatch, rule, 0.02, django_capture_on_commit_callbacks)
    assert sent == [{"values": True}]
    evaluate(monkeypatch, rule, 0.03, django_capture_on_commit_callbacks)
    assert sent == [{"values": True}]  # within the interval: nothing more
    cache.delete(VALUES_EVENT_KEY)  # the interval passed
    evaluate(monkeypatch, rule, 0.04, django_capture_on_commit_callbacks)
    assert sent == [{"values": True}, {"values": True}]


def test_an_unchanged_value_sends_nothing(rule, sent, monkeypatch, django_capture_on_commit_callbacks):
    evaluate(monkeypatch, rule, 0.01, django_capture_on_commit_callbacks)
    sent.clear()
    cache.delete(VALUES_EVENT_KEY)
    evaluate(monkeypatch, rule, 0.01, django_capture_on_commit_callbacks)
    assert sent == []


def test_zero_turns_the_values_event_off(rule, sent, monkeypatch, settings, django_capture_on_commit_callbacks):
    settings.DETECTION_VALUES_EVENT_SECONDS = 0
    evaluate(monkeypatch, rule, 0.01, django_capture_on_commit_callbacks)
    sent.clear()
    evaluate(monkeypatch, rule, 0.02, django_capture_on_commit_callbacks)
    assert sent == []
