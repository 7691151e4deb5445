"""API conventions shared by every app: pagination and the JSON error shape.

Every error answers `{"message": "...", "errors": {field: [...]}}` (errors only where fields are
at fault), whatever raised it: DRF validation, malformed JSON, an oversized body, a refused
domain operation, or a missing object.
"""
from __future__ import annotations

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from incidents.errors import DomainError


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
    if isinstance(exc, (Http404, PermissionDenied)):
        exc = exceptions.NotFound() if isinstance(exc, Http404) else exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    detail = response.data
    if isinstance(exc, exceptions.ValidationError):
        errors = detail if isinstance(detail, dict) else {"non_field_errors": detail}
        response.data = {"message": _flatten_message(errors), "code": "invalid", "errors": errors}
    else:
        message = detail.get("detail", detail) if isinstance(detail, dict) else detail
        response.data = {"message": str(message), "code": getattr(exc, "default_code", "error")}
    return response
