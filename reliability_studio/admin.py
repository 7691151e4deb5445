from django.contrib import admin, messages

from .models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Adding a token shows its key once (only the digest is stored); deleting one revokes it."""

    list_display = ("name", "user", "prefix", "created_at")
    search_fields = ("name", "prefix", "user__username")
    readonly_fields = ("prefix", "created_at")

    def get_fields(self, request, obj=None):
        return ("user", "name") if obj is None else ("user", "name", "prefix", "created_at")

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else ("user", "prefix", "created_at")

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        token, key = ApiToken.issue(user=obj.user, name=obj.name)
        obj.pk, obj._state.adding, obj._state.db = token.pk, False, token._state.db
        obj.prefix, obj.digest, obj.created_at = token.prefix, token.digest, token.created_at
        messages.warning(request, f"API token for {obj.user} (shown once; only its hash is kept): {key}")
