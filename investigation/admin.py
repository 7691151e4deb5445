"""Admin: runs, evidence and hypotheses are read-only (the workflow and responders write them
through investigation.services); changes are editable, saved through the service."""
from django.contrib import admin

from . import services
from .models import Change, Evidence, Hypothesis, InvestigationRun


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(InvestigationRun)
class InvestigationRunAdmin(ReadOnlyAdmin):
    list_display = ["id", "incident", "trigger", "status", "attempts", "created_at", "finished_at"]
    list_filter = ["status", "trigger"]
    search_fields = ["incident__id", "trigger_key", "summary"]


@admin.register(Evidence)
class EvidenceAdmin(ReadOnlyAdmin):
    list_display = ["id", "run", "kind", "source", "service", "status", "score", "finding"]
    list_filter = ["kind", "status", "source"]
    search_fields = ["service", "finding", "query"]


@admin.register(Hypothesis)
class HypothesisAdmin(ReadOnlyAdmin):
    list_display = ["id", "incident", "kind", "service", "confidence", "rank", "status", "decided_by"]
    list_filter = ["kind", "status"]
    search_fields = ["service", "title"]


@admin.register(Change)
class ChangeAdmin(admin.ModelAdmin):
    list_display = ["id", "service", "kind", "source", "version", "author", "occurred_at", "external_id"]
    list_filter = ["kind", "source"]
    search_fields = ["service__slug", "version", "author", "external_id"]
    readonly_fields = ["source", "recorded_by", "created_at"]

    def save_model(self, request, obj, form, change):
        if change:
            services.update_change(change=obj, **{f: form.cleaned_data[f] for f in form.changed_data
                                                  if f not in self.readonly_fields})
        else:
            created, _ = services.record_change(
                service=obj.service, version=obj.version, kind=obj.kind, author=obj.author, url=obj.url,
                description=obj.description, occurred_at=obj.occurred_at, external_id=obj.external_id,
                user=request.user)
            obj.pk = created.pk
