"""What every action kind declares: typed parameters, a target, a dry run and an execution."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class ParamError(ValueError):
    """A parameter is missing or wrong; `field` names it."""

    def __init__(self, field: str | None, message: str):
        self.field, self.message = field, message
        super().__init__(f"{field}: {message}" if field else message)


class ActionError(Exception):
    """The action could not be done (or previewed); the message is one line for the timeline."""

    def __init__(self, message: str, *, detail: dict | None = None):
        super().__init__(message)
        self.detail = detail or {}


@dataclass(frozen=True)
class Param:
    type: type | tuple
    required: bool = True
    default: Any = None
    min: float | None = None
    max: float | None = None
    choices: tuple = ()
    help: str = ""

    def clean(self, name: str, value: Any) -> Any:
        if value is None:
            if self.required:
                raise ParamError(name, "is required")
            return self.default
        types = self.type if isinstance(self.type, tuple) else (self.type,)
        if isinstance(value, bool) and bool not in types:
            raise ParamError(name, f"must be {_type_names(types)}, not {value!r}")
        if float in types and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, types):
            raise ParamError(name, f"must be {_type_names(types)}, not {value!r}")
        if isinstance(value, str) and not value.strip() and self.required:
            raise ParamError(name, "cannot be empty")
        if self.choices and value not in self.choices:
            raise ParamError(name, f"must be one of {', '.join(map(str, self.choices))}, not {value!r}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if self.min is not None and value < self.min:
                raise ParamError(name, f"must be at least {self.min:g}, not {value}")
            if self.max is not None and value > self.max:
                raise ParamError(name, f"must be at most {self.max:g}, not {value}")
        return value


def _type_names(types: tuple) -> str:
    return " or ".join({str: "a string", int: "an integer", float: "a number", bool: "true or false",
                        dict: "a mapping", list: "a list"}.get(t, t.__name__) for t in types)


@dataclass
class ActionKind:
    name: str = ""
    label: str = ""
    # Changes production: approval (four eyes) is required unless a runbook step says otherwise.
    changes_production: bool = True
    params: dict[str, Param] = field(default_factory=dict)

    def clean(self, raw: dict) -> dict:
        if not isinstance(raw, dict):
            raise ParamError(None, "parameters must be a mapping")
        unknown = set(raw) - set(self.params)
        if unknown:
            key = sorted(unknown)[0]
            raise ParamError(key, f"unknown parameter (allowed: {', '.join(sorted(self.params))})")
        cleaned = {name: spec.clean(name, raw.get(name)) for name, spec in self.params.items()}
        self.check(cleaned)
        return cleaned

    def check(self, params: dict) -> None:
        """Cross-field rules (override)."""

    def target(self, params: dict) -> str:
        raise NotImplementedError

    def dry_run(self, params: dict) -> dict:
        """What would change: {"summary": str, "changes": [{"path", "before", "after"}], "request": {...}}."""
        raise NotImplementedError

    def execute(self, params: dict, *, action_id: int) -> dict:
        raise NotImplementedError


def change(path: str, before: Any, after: Any) -> dict:
    return {"path": path, "before": before, "after": after}
