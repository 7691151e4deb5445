from django.apps import AppConfig
from django.db.models.signals import post_migrate


class IncidentsConfig(AppConfig):
    name = "incidents"
    verbose_name = "Incidents"

    def ready(self):
        from reliability_studio.access import sync_role_permissions
        from reliability_studio.observability import register_collector

        from .metrics import IncidentCountCollector

        post_migrate.connect(sync_role_permissions, dispatch_uid="rs-sync-role-permissions")
        register_collector(IncidentCountCollector())  # rs_incidents on /metrics
