"""API tokens for machines (scripts, the Grafana plugin, CI), stored the way alert-source tokens are:
only a SHA-256 digest of the key is kept, with a short prefix so that people can tell tokens apart.
The key itself is shown once, when the token is created (`manage.py create_api_token`, the admin).
"""
from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.db import models

KEY_PREFIX = "rs_"  # marks a Reliability Studio key in logs, secret scanners and config files
PREFIX_LENGTH = 8


def hash_key(key: str) -> str:
    """The digest stored for a key (hex SHA-256, as detection.models.hash_token does for sources).

    Keys are 256-bit random strings, so a fast unsalted hash is enough: there is nothing to guess.
    """
    return hashlib.sha256(key.encode()).hexdigest()


def key_prefix(key: str) -> str:
    return key.removeprefix(KEY_PREFIX)[:PREFIX_LENGTH]


class ApiTokenQuerySet(models.QuerySet):
    def for_key(self, key: str):
        """The token whose digest matches `key` (one indexed query, with its user)."""
        return self.select_related("user").filter(digest=hash_key(key))


class ApiToken(models.Model):
    """A user's API key; requests with `Authorization: Token <key>` act as that user, with their role."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True, help_text="what the token is for (e.g. grafana-plugin)")
    prefix = models.CharField(max_length=PREFIX_LENGTH, editable=False, db_index=True,
                              help_text="first characters of the key, to recognise it")
    digest = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name or 'token'} ({self.prefix}…) of {self.user}"

    @classmethod
    def issue(cls, *, user, name: str = "") -> tuple["ApiToken", str]:
        """Create a token for `user`; returns it and its key, which is not stored anywhere."""
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        token = cls.objects.create(user=user, name=name, prefix=key_prefix(key), digest=hash_key(key))
        return token, key
