from django.apps import AppConfig


class InvestigationConfig(AppConfig):
    name = "investigation"

    def ready(self) -> None:
        # Imported here, not at the top: models are not loaded when this module is. incidents must
        # not import investigation, so it sends signals (after commit) and we listen.
        from incidents import hooks

        from . import panels, receivers

        hooks.incident_opened.connect(receivers.on_incident_opened, dispatch_uid="investigation.opened")
        hooks.incident_reopened.connect(receivers.on_incident_reopened, dispatch_uid="investigation.reopened")
        hooks.services_joined.connect(receivers.on_services_joined, dispatch_uid="investigation.joined")
        hooks.incident_resolved.connect(receivers.on_incident_resolved, dispatch_uid="investigation.resolved")
        panels.register()  # the incident page's and the review's investigation regions
