"""The demo workload's own recovery endpoint (`DELETE /faults/<service>` on DEMO_CONTROL_URL), so
the demo heals for real in `make run`. `service: "*"` recovers every service."""
from __future__ import annotations

from detection.chaos import ChaosClient, ChaosError

from . import register
from .base import ActionError, ActionKind, Param, change


class DemoRecover(ActionKind):
    def target(self, p):
        return f"demo {p['service']}"

    def _faults(self) -> dict:
        try:
            return ChaosClient.from_settings().status()
        except ChaosError as exc:
            raise ActionError(f"demo control API: {exc}") from None

    def dry_run(self, p):
        status = self._faults()
        services = status.get("services") or {}
        chosen = services if p["service"] == "*" else {p["service"]: services.get(p["service"], {})}
        changes = []
        for name, info in chosen.items():
            info = info or {}
            if info.get("faults"):
                changes.append(change(f"{name}.faults", [f.get("kind") for f in info["faults"]], []))
            if info.get("up") is False:  # a crashed service is started again
                changes.append(change(f"{name}.up", False, True))
        what = ", ".join(f"{c['path']} {c['before']} → {c['after']}" for c in changes) or "nothing (no active faults)"
        return {"summary": f"Recover {'every demo service' if p['service'] == '*' else p['service']}: clears {what}",
                "changes": changes,
                "noop": not changes,
                "request": {"method": "DELETE", "path": "/faults" if p["service"] == "*" else f"/faults/{p['service']}"}}

    def execute(self, p, *, action_id):
        try:
            answer = ChaosClient.from_settings().recover(None if p["service"] == "*" else p["service"])
        except ChaosError as exc:
            raise ActionError(f"demo control API: {exc}") from None
        return {"answer": answer}


register(DemoRecover(name="demo.recover", label="Recover a demo service", params={"service": Param(str)}))
