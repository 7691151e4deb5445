"""Incident refusals, mapped to HTTP by the API layer (their base is the project's DomainError)."""
from reliability_studio.errors import DomainError

__all__ = ["DomainError", "DuplicateFingerprint", "InvalidTransition"]


class InvalidTransition(DomainError):
    http_status = 409
    code = "invalid_transition"


class DuplicateFingerprint(DomainError):
    http_status = 409
    code = "duplicate_fingerprint"
