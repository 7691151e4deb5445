"""Domain errors: refused operations with a clear message, mapped to HTTP by the API layer."""


class DomainError(Exception):
    http_status = 400
    code = "invalid"


class InvalidTransition(DomainError):
    http_status = 409
    code = "invalid_transition"


class DuplicateFingerprint(DomainError):
    http_status = 409
    code = "duplicate_fingerprint"
