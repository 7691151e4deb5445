"""The error every app raises for a refused operation, mapped to HTTP by `reliability_studio.api`.

It lives in the project package because the API layer, which every app uses, maps it to the JSON
error shape: the project package must not import an app to do that. Each app subclasses it for its
own refusals (`incidents.errors.InvalidTransition`, `ServiceInUse`, ...), setting the status and
the machine-readable code.
"""


class DomainError(Exception):
    """A refused operation with a message for the person who asked (HTTP `http_status`)."""

    http_status = 400
    code = "invalid"
