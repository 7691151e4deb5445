from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.renderers import JSONRenderer

from . import health, observability
from .access import Role, RolePermission, role_required


class SchemaView(SpectacularAPIView):
    """The OpenAPI schema, for viewers and above; a refusal answers in the JSON error shape, not in
    the YAML the schema itself is served as."""

    permission_classes = [RolePermission]

    def handle_exception(self, exc):
        self.request.accepted_renderer, self.request.accepted_media_type = JSONRenderer(), "application/json"
        return super().handle_exception(exc)


admin.site.site_header = "Reliability Studio administration"
admin.site.site_title = "Reliability Studio"

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", observability.metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(template_name="registration/login.html"), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/v1/", include("incidents.api.urls")),
    path("api/v1/", include("detection.api.urls")),
    path("api/v1/", include("notifications.api.urls")),
    path("api/v1/", include("investigation.api.urls")),
    path("api/v1/", include("investigation.api.review_urls")),
    path("api/v1/", include("remediation.api.urls")),
    path("api/auth/", include("rest_framework.urls")),
    # The schema maps every operation: viewers and above only (401 JSON for an anonymous client); the
    # two documentation pages send anonymous browsers to the login page.
    path("api/schema/", SchemaView.as_view(), name="schema"),
    path("api/docs/", role_required(Role.VIEWER)(SpectacularSwaggerView.as_view(url_name="schema")), name="api-docs"),
    path("api/redoc/", role_required(Role.VIEWER)(SpectacularRedocView.as_view(url_name="schema")), name="api-redoc"),
    path("api/v1/", include("slos.api.urls")),
    path("slos/", include("slos.urls")),
    path("detection/", include("detection.urls")),
    path("notifications/", include("notifications.urls")),
    path("investigation/", include("investigation.urls")),
    path("remediation/", include("remediation.urls")),
    path("", include("incidents.urls")),
]
