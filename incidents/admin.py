"""The Django admin for the incident app. Every write goes through incidents.services, like the API
and the control room: the incident itself is read-only here (its fields belong to services that
write the timeline, publish the live event and sync the Grafana annotation); actions call them."""
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Q

from reliability_studio.access import Role, has_role

from . import services
from .errors import DomainError
from .models import Incident, Service, Status, Task, TimelineEvent


class ServiceAdminForm(forms.ModelForm):
    class Meta:
        model = Service
        fields = "__all__"

    def clean(self):
        data = super().clean()
        if "slug" in data and "depends_on" in data:
            try:  # refused here so the admin shows it on the field (the service checks again)
                services.check_dependencies(service_slug=data["slug"], depends_on=[s.slug for s in data["depends_on"]])
            except ValidationError as exc:
                self.add_error("depends_on", exc.message_dict["depends_on"])
        return data


def _mark_saved(obj, saved) -> None:
    """The admin goes on with its own instance (log entry, redirect): give it the saved row."""
    obj.pk = saved.pk
    obj._state.adding = False
    obj._state.db = saved._state.db


@admin.register(Service)
class ServiceAdmin(admin.ModelAdmin):
    form = ServiceAdminForm
    list_display = ("slug", "name", "owner_team", "tier")
    list_filter = ("tier", "owner_team")
    search_fields = ("slug", "name", "owner_team")
    filter_horizontal = ("depends_on",)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        fields = {f: data[f] for f in services.SERVICE_FIELDS if f in data}
        depends_on = list(data.get("depends_on", []))
        if change:
            services.update_service(service=obj, depends_on=depends_on, user=request.user, **fields)
        else:
            _mark_saved(obj, services.create_service(depends_on=depends_on, user=request.user, **fields))

    def save_related(self, request, form, formsets, change):
        # depends_on was written by the service in save_model (form.save_m2m would bypass the cycle check)
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def get_deleted_objects(self, objs, request):
        """Incidents that list the service as affected protect it too (they are kept for the review)."""
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        for service in objs:
            for incident in Incident.objects.filter(Q(primary_service=service) | Q(affected_services=service)).distinct()[:20]:
                label = f"Incident: {incident}"
                if label not in protected:
                    protected.append(label)
        return deleted, counts, perms_needed, protected

    def delete_model(self, request, obj):
        services.delete_service(service=obj, user=request.user)

    def delete_queryset(self, request, queryset):
        for service in queryset:
            services.delete_service(service=service, user=request.user)


class TimelineInline(admin.TabularInline):
    """The timeline is append-only: shown, never edited or deleted here."""

    model = TimelineEvent
    extra = 0
    can_delete = False
    fields = ("occurred_at", "kind", "actor", "message")
    readonly_fields = fields
    ordering = ("occurred_at",)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class TaskInline(admin.TabularInline):
    """Shown here; edited on the task's own admin page (through the services) or in the control room."""

    model = Task
    extra = 0
    can_delete = False
    fields = ("title", "owner", "done", "due_at")
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Incident)
class IncidentAdmin(admin.ModelAdmin):
    """Read-only: declaring, editing and status changes go through the control room or the API
    (incidents.services writes the timeline, the live event and the Grafana annotation). The
    actions here call the same services."""

    list_display = ("id", "title", "severity", "status", "source", "primary_service", "started_at")
    list_filter = ("status", "severity", "source", "primary_service")
    search_fields = ("title", "summary", "fingerprint")
    date_hierarchy = "started_at"
    inlines = (TaskInline, TimelineInline)
    actions = ["mitigate_selected", "resolve_selected"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # view only: every field belongs to a service

    def has_delete_permission(self, request, obj=None):
        return False  # the system of record keeps every incident for the review

    def has_respond_permission(self, request):
        return has_role(request.user, Role.RESPONDER)

    def _transition(self, request, queryset, to: str) -> None:
        done = 0
        for incident in queryset.order_by("pk"):
            try:
                services.transition_incident(incident=incident, to=to, user=request.user, note="from the admin")
                done += 1
            except DomainError as exc:
                self.message_user(request, str(exc), messages.WARNING)
        if done:
            self.message_user(request, f"{done} incident(s) {to}.", messages.SUCCESS)

    @admin.action(description="Mark selected incidents mitigated", permissions=["respond"])
    def mitigate_selected(self, request, queryset):
        self._transition(request, queryset, Status.MITIGATED)

    @admin.action(description="Resolve selected incidents", permissions=["respond"])
    def resolve_selected(self, request, queryset):
        self._transition(request, queryset, Status.RESOLVED)


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    """Tasks are written by incidents.services (the incident's live view hears of every change)."""

    list_display = ("title", "incident", "owner", "done", "due_at")
    list_filter = ("done",)
    search_fields = ("title", "incident__title")
    autocomplete_fields = ("incident",)
    fields = ("incident", "title", "owner", "done", "due_at", "done_at")
    readonly_fields = ("done_at",)

    def get_readonly_fields(self, request, obj=None):
        return ("incident", "done_at") if obj is not None else ("done_at",)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            changes = {f: data[f] for f in ("title", "owner", "done", "due_at") if f in form.changed_data}
            if changes:
                services.update_task(task=obj, user=request.user, **changes)
        else:
            created = services.create_task(incident=data["incident"], title=data["title"], owner=data.get("owner"),
                                           due_at=data.get("due_at"), done=data.get("done", False), user=request.user)
            _mark_saved(obj, created)

    def has_delete_permission(self, request, obj=None):
        return False  # no service deletes tasks: a task that is no longer needed is marked done
