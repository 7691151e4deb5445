"""Webhook intake for external alerts: authenticate the sender, validate, queue, answer fast."""
from __future__ import annotations

import uuid

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from incidents.api.schema import AutoSchema
from reliability_studio.api import error_response

from ..intake import IntakeError, parse_webhook
from ..models import AlertSource, AlertSourceKind, hash_token
from ..tasks import ingest_external_alerts


class _AlertIntakeView(APIView):
    """POST a webhook body with `Authorization: Bearer <token of an alert source>`."""

    authentication_classes = []  # the caller is an alerting system with its own token, not a user
    permission_classes = []
    schema = AutoSchema()
    error_statuses = (401,)  # a missing or wrong bearer token
    parser_classes = [JSONParser]
    kind: str = ""

    def _source(self, request) -> AlertSource | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return AlertSource.objects.filter(token_hash=hash_token(token.strip()), kind=self.kind, enabled=True).first()

    @extend_schema(request=dict, responses={202: dict})
    def post(self, request):
        source = self._source(request)
        if source is None:
            response = error_response("missing or invalid bearer token for this alert source",
                                      status.HTTP_401_UNAUTHORIZED, code="not_authenticated")
            response["WWW-Authenticate"] = 'Bearer realm="alert-intake"'
            return response
        try:
            alerts = parse_webhook(self.kind, request.data)
        except IntakeError as exc:
            return error_response(f"malformed {self.kind} payload: {exc}", status.HTTP_400_BAD_REQUEST, code="invalid")
        # Validated here so a bad body is refused synchronously; the work itself is queued. The
        # delivery id lets a retried task skip the alerts it already applied.
        ingest_external_alerts.delay(source.pk, request.data, uuid.uuid4().hex)
        return Response({"message": f"accepted {len(alerts)} alert(s)", "accepted": len(alerts)},
                        status=status.HTTP_202_ACCEPTED)


class AlertmanagerIntakeView(_AlertIntakeView):
    kind = AlertSourceKind.ALERTMANAGER


class GrafanaIntakeView(_AlertIntakeView):
    kind = AlertSourceKind.GRAFANA
