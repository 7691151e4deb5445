"""The action kinds, one module each (Grafana OnCall's one-module-per-integration): what
parameters they take, what they would change (the dry run) and how they do it.

    kind = actions.get("kubernetes.rollout_restart")
    params = kind.clean(raw)            # ParamError naming the field
    kind.target(params)                 # "deployment shop/checkout"
    kind.dry_run(params)                # {"summary", "changes": [{"path", "before", "after"}], "request"}
    kind.execute(params, action_id=42)  # the result, or ActionError
"""
from __future__ import annotations

from .base import ActionError, ActionKind, ParamError

_REGISTRY: dict[str, ActionKind] = {}


def register(kind: ActionKind) -> ActionKind:
    _REGISTRY[kind.name] = kind
    return kind


def get(name: str) -> ActionKind | None:
    _load()
    return _REGISTRY.get(name)


def names() -> list[str]:
    _load()
    return sorted(_REGISTRY)


def _load() -> None:
    # Importing a module registers its kinds; importing twice is a no-op.
    from . import demo, kubernetes, webhook  # noqa: F401


__all__ = ["ActionError", "ActionKind", "ParamError", "get", "names", "register"]
