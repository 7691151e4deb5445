"""Email through Django's email backend (SMTP settings from the environment: EMAIL_HOST, …).

One message per recipient, so each carries its own acknowledge link (the ack names who clicked).
Threaded: the first notification's Message-ID is derived from the incident, and every later one
sets In-Reply-To and References to it, so mail clients show one conversation per incident. A
retry resends only to the recipients that have not been sent to yet.
"""
from __future__ import annotations

import smtplib
import socket

from django.conf import settings
from django.core import mail
from django.core.mail.message import make_msgid
from django.core.validators import validate_email
from django.core.exceptions import ValidationError
from django.template.loader import render_to_string

from . import ChannelError, SendResult

KIND = "email"
EVENTS = ("opened", "escalation", "acknowledged", "status", "hypothesis", "reopened", "resolved")


def validate(destination) -> dict[str, str]:
    recipients = destination.recipient_list
    if not recipients:
        return {"recipients": "at least one email address is required"}
    bad = []
    for address in recipients:
        try:
            validate_email(address)
        except ValidationError:
            bad.append(address)
    return {"recipients": f"not an email address: {', '.join(bad)}"} if bad else {}


def thread_id(message) -> str:
    """The Message-ID of the incident's first notification: every later one refers to it."""
    return f"<incident-{message.incident_id}.{settings.CHANNEL_PREFIX}@{settings.NOTIFICATIONS_EMAIL_DOMAIN}>"


def build_email(message, recipient: str, ack_url: str | None) -> mail.EmailMultiAlternatives:
    root = thread_id(message)
    first = message.event == "opened"
    headers = {"Message-ID": root if first else make_msgid(domain=settings.NOTIFICATIONS_EMAIL_DOMAIN),
               "X-RS-Incident": message.incident_key, "X-RS-Event": message.event,
               "Auto-Submitted": "auto-generated"}
    if not first:
        headers["In-Reply-To"] = root
        headers["References"] = root
    context = {"m": message, "ack_url": ack_url}
    subject = f"[{message.severity.upper()}] {message.incident_key} {message.title}"
    if not first:
        subject = "Re: " + subject  # the same subject keeps clients without References threading too
    email = mail.EmailMultiAlternatives(
        subject=subject[:250], body=render_to_string("notifications/email.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL, to=[recipient], headers=headers)
    email.attach_alternative(render_to_string("notifications/email.html", context), "text/html")
    return email


def send(destination, message, *, progress: dict) -> SendResult:
    sent = list(progress.get("sent_to", []))
    remaining = [r for r in destination.recipient_list if r not in sent]
    try:
        with mail.get_connection(fail_silently=False, timeout=settings.EMAIL_TIMEOUT) as connection:
            for recipient in remaining:
                email = build_email(message, recipient, message.ack_url(recipient=recipient))
                connection.send_messages([email])
                sent.append(recipient)
    except smtplib.SMTPRecipientsRefused as exc:
        raise ChannelError(f"recipient refused: {', '.join(exc.recipients)}", retryable=False,
                           progress={"sent_to": sent}) from None
    except smtplib.SMTPResponseException as exc:
        raise ChannelError(f"SMTP {exc.smtp_code}: {exc.smtp_error[:150]!r}", retryable=exc.smtp_code < 500,
                           progress={"sent_to": sent}) from None
    except (smtplib.SMTPException, OSError, socket.timeout) as exc:
        raise ChannelError(f"{type(exc).__name__}: could not reach the mail server", retryable=True,
                           progress={"sent_to": sent}) from None
    return SendResult(detail={"sent_to": sent, "thread": thread_id(message)})
