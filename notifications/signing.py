"""Signed, expiring one-click acknowledge links (django.core.signing.TimestampSigner).

The token names the incident, the destination and the recipient it was sent to, so an anonymous
acknowledgement (when NOTIFICATIONS_ACK_ANONYMOUS allows it) still records who it came from. The
link's GET shows a confirm page and only the POST acknowledges, so mail scanners that follow links
acknowledge nothing.
"""
from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.urls import reverse

SALT = "notifications.ack.v1"


class BadAckLink(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason  # "expired" or "invalid"


@dataclass(frozen=True)
class AckClaim:
    incident_id: int
    destination_id: int | None
    recipient: str


def make_ack_token(*, incident_id: int, destination_id: int | None, recipient: str) -> str:
    return signing.TimestampSigner(salt=SALT).sign_object(
        {"i": incident_id, "d": destination_id, "r": recipient[:200]}, compress=True)


def read_ack_token(token: str, *, max_age: float | None = None) -> AckClaim:
    """The claim in a valid, unexpired token; BadAckLink otherwise."""
    max_age = settings.NOTIFICATIONS_ACK_LINK_MAX_AGE_SECONDS if max_age is None else max_age
    try:
        data = signing.TimestampSigner(salt=SALT).unsign_object(token, max_age=max_age)
    except signing.SignatureExpired:
        raise BadAckLink("expired") from None
    except (signing.BadSignature, ValueError, TypeError):
        raise BadAckLink("invalid") from None
    if not isinstance(data, dict) or not isinstance(data.get("i"), int):
        raise BadAckLink("invalid")
    return AckClaim(incident_id=data["i"], destination_id=data.get("d"), recipient=str(data.get("r", "")))


def ack_url(*, incident_id: int, destination_id: int | None, recipient: str) -> str:
    token = make_ack_token(incident_id=incident_id, destination_id=destination_id, recipient=recipient)
    return settings.NOTIFICATIONS_BASE_URL.rstrip("/") + reverse("notifications:ack", args=[token])
