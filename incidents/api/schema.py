"""The OpenAPI schema class: drf-spectacular's, plus the error responses in the one error shape.

Kept out of reliability_studio/api.py: drf-spectacular imports DRF's generics, whose class body
imports that module (the pagination class), so importing drf-spectacular there is a cycle.
"""
from __future__ import annotations

import http
import re

from django.urls.converters import get_converters
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema

from reliability_studio.api import ErrorSerializer

UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


class AutoSchema(SpectacularAutoSchema):
    """drf-spectacular's schema plus the error responses an operation can give, all in the error
    shape: 400 (bad body or query), 401/403 (authentication, role), 404 (unknown object or page),
    409 (refused change), 413 (body too large). A view adds codes with `error_statuses`."""

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        codes = set(getattr(self.view, "error_statuses", ()))
        parameters = operation.get("parameters", [])
        self._document_path_patterns(parameters, path_regex)
        has_body = self.method in UNSAFE_METHODS and self.method != "DELETE"
        user_facing = bool(self.view.get_authenticators() or self.view.get_permissions())
        if has_body or any(p.get("in") == "query" for p in parameters):
            codes.add(400)
        if has_body:
            codes.add(413)
        if user_facing:
            codes |= {401, 403}
            if self.method in UNSAFE_METHODS:
                codes.add(409)  # a refused change: invalid transition, duplicate, still referenced
        if any(p.get("in") == "path" for p in parameters) or any(p.get("name") == "page" for p in parameters):
            codes.add(404)
        responses = operation["responses"]
        for code in sorted(codes):
            if str(code) not in responses:
                response = self._get_response_for_code(ErrorSerializer, str(code))
                response["description"] = http.HTTPStatus(code).phrase
                responses[str(code)] = response
        return operation

    @staticmethod
    def _document_path_patterns(parameters, path_regex: str) -> None:
        """A string path parameter gets the pattern its URL accepts: a value outside it never
        reaches a view (Django answers 404 itself), so the schema must not promise it."""
        for parameter in parameters:
            schema = parameter.get("schema", {})
            if parameter.get("in") != "path" or schema.get("type") != "string" or "pattern" in schema:
                continue
            group = _named_group(path_regex, parameter["name"])
            if group:
                schema["pattern"] = f"^{group}$"


def _named_group(regex: str, name: str) -> str | None:
    """What the URL accepts for `name`: the body of `(?P<name>...)` in a regex route (balanced
    parentheses), or the converter's regex of `<converter:name>` in a path() route; else None."""
    start = regex.find(f"(?P<{name}>")
    if start < 0:
        match = re.search(rf"<(?:(\w+):)?{re.escape(name)}>", regex)
        if match is None:
            return None
        return get_converters()[match.group(1) or "str"].regex
    i = body = start + len(name) + 5
    depth = 1
    while i < len(regex):
        char = regex[i]
        if char == "\\":
            i += 2
            continue
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0:
            return regex[body:i]
        i += 1
    return None
