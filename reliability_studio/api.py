"""API conventions shared by every app: pagination, the JSON error shape, and the fields and
schema that keep both honest.

Every error answers `{"message": "...", "code": "...", "errors": {field: [...]}}` (errors only where
fields are at fault), whatever raised it: DRF validation, malformed JSON, an oversized body, a
refused domain operation, a missing object, a row still referenced, and, as the last line of
defence, an unexpected exception (500, still JSON, never Django's debug page).
"""
from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError, IntegrityError
from django.db.models import ProtectedError, RestrictedError
from django.http import Http404
from rest_framework import exceptions, serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from reliability_studio.errors import DomainError

log = logging.getLogger(__name__)


class Pagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 200


def _flatten_message(detail) -> str:
    if isinstance(detail, dict):
        for key, value in detail.items():
            return f"{key}: {_flatten_message(value)}" if key != "non_field_errors" else _flatten_message(value)
        return "Invalid input."
    if isinstance(detail, list):
        return _flatten_message(detail[0]) if detail else "Invalid input."
    return str(detail)


def error_response(message: str, http_status: int, *, errors=None, code: str | None = None) -> Response:
    body = {"message": message}
    if code:
        body["code"] = code
    if errors:
        body["errors"] = errors
    return Response(body, status=http_status)


def exception_handler(exc, context):
    if isinstance(exc, RequestDataTooBig):
        return error_response("Request body is too large.", status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, code="too_large")
    if isinstance(exc, DomainError):
        return error_response(str(exc), exc.http_status, code=exc.code)
    if isinstance(exc, DjangoValidationError):
        errors = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        return error_response(_flatten_message(errors), status.HTTP_400_BAD_REQUEST, errors=errors, code="invalid")
    # Services refuse these with a clear message first; here so that a path that forgot cannot 500.
    if isinstance(exc, (ProtectedError, RestrictedError)):
        set_rollback()
        return error_response("This object is still referenced by other records.", status.HTTP_409_CONFLICT,
                              code="protected")
    if isinstance(exc, IntegrityError):
        set_rollback()
        return error_response("The change conflicts with existing data.", status.HTTP_409_CONFLICT, code="conflict")
    if isinstance(exc, DataError):  # the database refused a value (NUL character, out of range)
        set_rollback()
        return error_response("A value cannot be stored (out of range or invalid characters).",
                              status.HTTP_400_BAD_REQUEST, code="invalid")
    if isinstance(exc, (Http404, PermissionDenied)):
        exc = exceptions.NotFound() if isinstance(exc, Http404) else exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        # Last line of defence: logged with its traceback, answered in the error shape.
        view = context.get("view")
        request = context.get("request")
        log.error("unhandled API error in %s", type(view).__name__ if view else "?", exc_info=exc,
                  extra={"path": getattr(request, "path", None), "method": getattr(request, "method", None)})
        set_rollback()
        return error_response("Internal server error.", status.HTTP_500_INTERNAL_SERVER_ERROR, code="server_error")
    detail = response.data
    if isinstance(exc, exceptions.ValidationError):
        errors = detail if isinstance(detail, dict) else {"non_field_errors": detail}
        response.data = {"message": _flatten_message(errors), "code": "invalid", "errors": errors}
    else:
        message = detail.get("detail", detail) if isinstance(detail, dict) else detail
        response.data = {"message": str(message), "code": getattr(exc, "default_code", "error")}
    return response


# --- input the database cannot hold ----------------------------------------------------------

def check_storable_text(value: str) -> str:
    """PostgreSQL refuses NUL characters in text and JSON; refuse them as invalid input."""
    if "\x00" in value:
        raise serializers.ValidationError("must not contain NUL characters")
    return value


def validate_string_map(value) -> dict[str, str]:
    """Labels: an object of string values, storable in PostgreSQL."""
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise serializers.ValidationError("labels must be an object of string values")
    if any("\x00" in k or "\x00" in v for k, v in value.items()):
        raise serializers.ValidationError("labels must not contain NUL characters")
    return value


class SlugRelatedField(serializers.SlugRelatedField):
    """DRF's field, but a lookup value the database cannot hold (NUL) is invalid, not a 500."""

    def to_internal_value(self, data):
        if isinstance(data, str) and "\x00" in data:
            self.fail("invalid")
        return super().to_internal_value(data)


# --- the schema documents the error responses ------------------------------------------------

# The schema class that documents these errors on every operation is incidents.api.schema.AutoSchema
# (drf-spectacular imports DRF's generics, which import this module for the pagination class).
class ErrorSerializer(serializers.Serializer):
    """The one error shape."""

    message = serializers.CharField()
    code = serializers.CharField(required=False)
    errors = serializers.DictField(required=False, help_text="field → messages, where fields are at fault")
