from django.apps import AppConfig


class SlosConfig(AppConfig):
    name = "slos"
    verbose_name = "SLOs"

    def ready(self) -> None:
        # incidents must not import slos: it sends signals after commit, we listen and register
        # our region of the incident page.
        from incidents import hooks

        from . import panels, receivers

        hooks.incident_resolved.connect(receivers.on_incident_resolved, dispatch_uid="slos.resolved")
        panels.register()
