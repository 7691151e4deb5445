"""The only code that opens, updates, transitions and resolves incidents.

Every function here takes keyword-only arguments, validates, writes inside one transaction, appends
to the timeline and publishes one live event per change (after commit). Other apps call these;
they never write incident rows themselves. Import from this package (`from incidents import
services`); the modules are its seams:

- `lifecycle`: declare, transition, acknowledge and edit an incident;
- `deduplication`: open or update the incident of an automated signal's fingerprint;
- `timeline`: timeline entries and comments;
- `action_items`: an incident's tasks;
- `catalog`: services and their dependencies.
"""
from reliability_studio.errors import DomainError
from reliability_studio.packages import forward_replacements

from .. import events, hooks, selectors, tasks  # noqa: F401  (still reachable as services.<module>)
from ..errors import DuplicateFingerprint, InvalidTransition
from .action_items import create_task, task_event_data, update_task
from .catalog import (
    CATALOG_LOCK,
    SERVICE_FIELDS,
    ServiceInUse,
    check_dependencies,
    create_service,
    delete_service,
    set_service_dependencies,
    update_service,
)
from .deduplication import OpenResult, open_or_update_incident
from .lifecycle import (
    ALLOWED_TRANSITIONS,
    ANNOTATED_FIELDS,
    EDITABLE_FIELDS,
    MAX_STARTED_AGE,
    acknowledge_incident,
    create_incident,
    incident_event_data,
    transition_incident,
    update_incident,
)
from .timeline import add_comment, append_timeline_event, timeline_event_data

__all__ = [
    "ALLOWED_TRANSITIONS", "ANNOTATED_FIELDS", "CATALOG_LOCK", "EDITABLE_FIELDS", "MAX_STARTED_AGE",
    "SERVICE_FIELDS", "DomainError", "DuplicateFingerprint", "InvalidTransition", "OpenResult",
    "ServiceInUse", "acknowledge_incident", "add_comment", "append_timeline_event", "check_dependencies",
    "create_incident", "create_service", "create_task", "delete_service", "incident_event_data",
    "open_or_update_incident", "set_service_dependencies", "task_event_data", "timeline_event_data",
    "transition_incident", "update_incident", "update_service", "update_task",
]

forward_replacements(__name__)
