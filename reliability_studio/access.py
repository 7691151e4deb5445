"""The one permission scheme, shared by the API, the pages and the WebSocket.

Roles are Django groups, ordered: viewer (read) < responder (acknowledge, update, comment,
resolve) < admin (rules, SLOs, runbooks, users). A superuser is an admin. Every entry point asks
`has_role(user, Role.X)`; DRF views declare a per-action map, pages use `role_required`. Machines
authenticate with an API token (`ApiTokenAuthentication`; only its hash is stored).
"""
from __future__ import annotations

import enum
import functools
import ipaddress

from django.conf import settings
from django.contrib.auth.backends import RemoteUserBackend
from django.contrib.auth.middleware import RemoteUserMiddleware
from django.contrib.auth.models import Group, Permission
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission

from .models import ApiToken


class Role(enum.IntEnum):
    NONE = 0
    VIEWER = 10
    RESPONDER = 20
    ADMIN = 30

    @property
    def group_name(self) -> str:
        return self.name.lower()

    @classmethod
    def from_name(cls, name: str) -> "Role":
        try:
            return cls[name.upper()]
        except KeyError:
            raise ValueError(f"unknown role {name!r}; expected viewer, responder or admin") from None


GROUP_ROLES = {role.group_name: role for role in (Role.VIEWER, Role.RESPONDER, Role.ADMIN)}


def role_of(user) -> Role:
    """The highest role a user holds (cached on the user object for the request)."""
    if user is None or not user.is_authenticated or not user.is_active:
        return Role.NONE
    cached = getattr(user, "_rs_role", None)
    if cached is not None:
        return cached
    if user.is_superuser:
        role = Role.ADMIN
    else:
        names = user.groups.values_list("name", flat=True)
        role = max((GROUP_ROLES[n] for n in names if n in GROUP_ROLES), default=Role.NONE)
    user._rs_role = role
    return role


def has_role(user, required: Role) -> bool:
    return role_of(user) >= required


def grant_role(user, role: Role) -> None:
    """Make `role` the user's only Reliability Studio role (admins also get the Django admin)."""
    user.groups.remove(*Group.objects.filter(name__in=GROUP_ROLES))
    user.groups.add(Group.objects.get_or_create(name=role.group_name)[0])
    if user.is_staff != (role >= Role.ADMIN) and not user.is_superuser:
        user.is_staff = role >= Role.ADMIN
        user.save(update_fields=["is_staff"])
    user.__dict__.pop("_rs_role", None)


# The Django admin checks model permissions; the role groups carry them so that the admin obeys the
# same roles as everything else. Re-synced after every migrate (new models get their permissions).
ADMIN_APPS = ("incidents", "slos", "detection", "investigation", "remediation", "notifications", "auth",
              "reliability_studio")


def sync_role_permissions(**_kwargs) -> None:
    ensure_role_groups()
    perms = Permission.objects.filter(content_type__app_label__in=ADMIN_APPS)
    Group.objects.get(name=Role.ADMIN.group_name).permissions.set(perms)
    Group.objects.get(name=Role.VIEWER.group_name).permissions.set(perms.filter(codename__startswith="view_"))
    Group.objects.get(name=Role.RESPONDER.group_name).permissions.set(
        perms.filter(content_type__app_label="incidents").filter(
            codename__in=["view_incident", "change_incident", "view_task", "add_task", "change_task",
                          "view_timelineevent", "view_service"]
        )
    )


class ApiTokenAuthentication(BaseAuthentication):
    """`Authorization: Token <key>` (DRF's scheme, so existing clients keep working): the key's SHA-256
    digest is looked up, with its user, in one query; the key itself is never stored. A wrong key, an
    inactive or deleted user → 401. Other schemes (a proxy's `Bearer`) are left to the next class.
    """

    keyword = b"token"

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Invalid token header: expected one key after the keyword.")
        try:
            key = parts[1].decode()
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        token = ApiToken.objects.for_key(key).first()
        if token is None or not token.user.is_active:
            raise exceptions.AuthenticationFailed("Invalid token, or its user is inactive.")
        return token.user, token

    def authenticate_header(self, request) -> str:
        return "Token"  # a WWW-Authenticate header is what makes DRF answer 401 rather than 403


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """How the OpenAPI schema documents ApiTokenAuthentication (as DRF's own token scheme was)."""

    target_class = ApiTokenAuthentication
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "Authorization",
                "description": 'Token-based authentication with required prefix "Token"'}


class RolePermission(BasePermission):
    """DRF permission: the view declares `required_roles = {action | "action:METHOD" | METHOD: Role}`.

    Reads default to viewer and writes to admin, so a view that forgets to declare an action is
    closed rather than open. Anonymous clients get 401 (DRF turns `not authenticated` into 401).
    """

    message = "Your role does not allow this action."

    def has_permission(self, request, view) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False
        required = required_role_for(view, request)
        return has_role(request.user, required)


def required_role_for(view, request) -> Role:
    roles = getattr(view, "required_roles", {})
    action = getattr(view, "action", None)
    if f"{action}:{request.method}" in roles:  # one action, different roles per method
        return roles[f"{action}:{request.method}"]
    if action in roles:
        return roles[action]
    if request.method in roles:
        return roles[request.method]
    return Role.VIEWER if request.method in ("GET", "HEAD", "OPTIONS") else Role.ADMIN


def role_required(required: Role):
    """Page decorator: anonymous → login redirect; authenticated without the role → 403."""

    def decorator(view_func):
        @functools.wraps(view_func)
        def wrapper(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not has_role(request.user, required):
                raise PermissionDenied("Your role does not allow this page.")
            return view_func(request, *args, **kwargs)

        return wrapper

    return decorator


def role_context(request) -> dict:
    """Template context: `role` and booleans the templates use to show or hide actions."""
    role = role_of(getattr(request, "user", None))
    return {"role": role.name.lower(), "can_respond": role >= Role.RESPONDER, "can_administer": role >= Role.ADMIN}


def _address_is_trusted(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    for entry in settings.AUTH_PROXY_TRUSTED_IPS:
        try:
            if ip in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


class TrustedProxyUserMiddleware(RemoteUserMiddleware):
    """Trust a reverse proxy's user header (like Grafana's auth proxy), only when enabled and only
    from the configured proxy addresses. A header from anywhere else is ignored."""

    force_logout_if_no_header = False
    async_capable = False  # one code path (sync), so the address check cannot be skipped

    def __init__(self, get_response):
        super().__init__(get_response)
        # Django reads headers from META as HTTP_<NAME>.
        self.header = "HTTP_" + settings.AUTH_PROXY_HEADER.upper().replace("-", "_")

    def process_request(self, request):
        if not settings.AUTH_PROXY_ENABLED or not _address_is_trusted(request.META.get("REMOTE_ADDR", "")):
            return None
        return super().process_request(request)


class TrustedProxyUserBackend(RemoteUserBackend):
    @property
    def create_unknown_user(self) -> bool:
        return settings.AUTH_PROXY_AUTO_CREATE

    def configure_user(self, request, user, created=True):
        if created:
            grant_role(user, Role.from_name(settings.AUTH_PROXY_DEFAULT_ROLE))
        return user


def ensure_role_groups() -> None:
    for name in GROUP_ROLES:
        Group.objects.get_or_create(name=name)
