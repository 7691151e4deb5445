"""Alert state, grouping into incidents, automatic resolution, and external intake.

Evaluation results and external deliveries become per-series alert state here; every incident
write goes through incidents.services, and every rule write through the rule functions (they
publish `detection.updated` after commit). Import from this package (`from detection import
services`); the modules are its seams:

- `rule_evaluation`: evaluate rules against their sources, step each series' alert, claim due rules;
- `alert_state`: what an alert's change causes, and retiring the alerts of disabled/deleted rules;
- `routing`: which incident a firing alert opens, joins or reopens (grouping and its locks);
- `resolution`: automatic mitigation and resolution of detection's incidents;
- `rules`: rule writes and checking a rule's query with its source;
- `external`: applying Alertmanager/Grafana deliveries.
"""
from reliability_studio.packages import forward_replacements

from .. import evaluation  # noqa: F401  (still reachable as services.evaluation)
from .alert_state import ACTIVE_STATES, KIND_EVENTS, on_alert_transition, resolve_alerts_of_retired_rules
from .external import TRANSIENT_ERRORS, ingest_external_alerts
from .resolution import auto_resolve_hold, auto_resolve_incidents
from .routing import (
    AUTO_SOURCES,
    COMPONENT_LOCK,
    FINGERPRINT_LOCK,
    GROUP_KEY_LOCK,
    grouping_lock_key,
    route_alert_to_incident,
)
from .rule_evaluation import (
    HEALTH_FIELDS,
    VALUES_EVENT_KEY,
    apply_observations,
    due_rules,
    evaluate_rule,
    evaluate_rules,
)
from .rules import (
    RULE_FIELDS,
    check_rule_source,
    create_rule,
    delete_rule,
    disable_rule,
    enable_rule,
    update_rule,
    validate_rule,
)

__all__ = [
    "ACTIVE_STATES", "AUTO_SOURCES", "COMPONENT_LOCK", "FINGERPRINT_LOCK", "GROUP_KEY_LOCK", "HEALTH_FIELDS", "VALUES_EVENT_KEY",
    "KIND_EVENTS",
    "RULE_FIELDS", "TRANSIENT_ERRORS", "apply_observations", "auto_resolve_hold", "auto_resolve_incidents",
    "check_rule_source", "create_rule", "delete_rule", "disable_rule", "due_rules", "enable_rule",
    "evaluate_rule", "evaluate_rules", "grouping_lock_key", "ingest_external_alerts", "on_alert_transition",
    "resolve_alerts_of_retired_rules", "route_alert_to_incident", "update_rule", "validate_rule",
]

forward_replacements(__name__)
