"""Keep a module that became a package behave like one module when a name on it is replaced.

`incidents.services` and `detection.services` were single modules; callers and tests replace their
functions (`monkeypatch.setattr(services, "on_alert_transition", ...)`, a spy around
`create_service`) and expect the package's own code to call the replacement, as it did when all of
it lived in one namespace. Each submodule now holds its own binding of the names it imports from a
sibling, so the package forwards a replacement to every submodule bound to the same object.
"""
from __future__ import annotations

import sys
import types

_MISSING = object()


class _ForwardingPackage(types.ModuleType):
    def __setattr__(self, name: str, value) -> None:
        current = self.__dict__.get(name, _MISSING)
        if current is not _MISSING and not isinstance(current, types.ModuleType):
            prefix = self.__name__ + "."
            for module_name, module in list(sys.modules.items()):
                bound = module.__dict__.get(name, _MISSING) if module is not None else _MISSING
                if module_name.startswith(prefix) and bound is current:
                    module.__dict__[name] = value
        super().__setattr__(name, value)


def forward_replacements(package_name: str) -> None:
    """Make setting `package.name` also set `name` in each of its submodules bound to the same object."""
    sys.modules[package_name].__class__ = _ForwardingPackage
