"""Post-incident review API.

    GET /api/v1/incidents/{key}/review/             the review as JSON (generated first if missing)
    GET /api/v1/incidents/{key}/review/?format=md   the same as Markdown (also: Accept: text/markdown)
    PUT /api/v1/incidents/{key}/review/             {"sections": {"<name>": "text" | null}}: responders'
                                                    edits (null restores the generated text)

Unknown sections are a 400 naming them; viewers get 403 on PUT; an unknown key is a 404. The review
is rendered from stored rows only, never from telemetry.
"""
from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import renderers
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from incidents.api.views import _get_incident
from reliability_studio.access import Role

from .. import review as reviews


class MarkdownRenderer(renderers.BaseRenderer):
    """text/markdown, selected by `?format=md` or the Accept header. Errors (dicts) become one line."""

    media_type = "text/markdown"
    format = "md"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, str):
            return data.encode(self.charset)
        if isinstance(data, dict) and "message" in data:
            return f"Error: {data['message']}\n".encode(self.charset)
        return renderers.JSONRenderer().render(data)


class ReviewView(APIView):
    """An incident's post-incident review: read (JSON or Markdown) or edit sections."""

    required_roles = {"GET": Role.VIEWER, "HEAD": Role.VIEWER, "OPTIONS": Role.VIEWER, "PUT": Role.RESPONDER}
    renderer_classes = [renderers.JSONRenderer, MarkdownRenderer]

    @extend_schema(parameters=[OpenApiParameter("format", str, enum=["json", "md"])],
                   responses={(200, "application/json"): OpenApiTypes.OBJECT, (200, "text/markdown"): OpenApiTypes.STR})
    def get(self, request, key: str):
        review = reviews.get_or_generate_review(_get_incident(key))
        if request.accepted_renderer.format == MarkdownRenderer.format:
            response = Response(reviews.review_markdown(review))
            response["Content-Disposition"] = f'inline; filename="{review.incident.key}-review.md"'
            return response
        return Response(reviews.review_document(review))

    @extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT)
    def put(self, request, key: str):
        incident = _get_incident(key)
        sections = request.data.get("sections") if isinstance(request.data, dict) else None
        if not isinstance(sections, dict) or not sections:
            raise ValidationError({"sections": ["An object of section name → text (or null), e.g. "
                                                '{"sections": {"lessons": "…"}}.']})
        unknown = sorted(set(sections) - set(reviews.SECTION_NAMES))
        if unknown:
            raise ValidationError({"sections": [f"Unknown section(s): {', '.join(unknown)}; expected "
                                                f"{', '.join(reviews.SECTION_NAMES)}."]})
        review = reviews.get_or_generate_review(incident)
        try:
            review = reviews.edit_review(review=review, sections=sections, user=request.user)
        except DjangoValidationError as exc:
            raise ValidationError({"sections": exc.message_dict}) from exc
        return Response(reviews.review_document(review))
