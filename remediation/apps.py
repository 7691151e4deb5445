from django.apps import AppConfig


class RemediationConfig(AppConfig):
    name = "remediation"

    def ready(self) -> None:
        # incidents and investigation must not import remediation: we listen to their signals
        # (incidents.hooks after commit; the Hypothesis rows' post_save, queued on commit) and
        # register our region of the incident page.
        from django.db.models.signals import post_save

        from incidents import hooks

        from . import panels, receivers

        hooks.incident_opened.connect(receivers.on_incident_opened, dispatch_uid="remediation.opened")
        hooks.services_joined.connect(receivers.on_services_joined, dispatch_uid="remediation.joined")
        post_save.connect(receivers.on_hypothesis_saved, sender="investigation.Hypothesis",
                          dispatch_uid="remediation.hypothesis")
        panels.register()
