"""The import rules of docs/architecture.md, read from every module's imports (with `ast`, so an
import inside a function counts too): a new import against the flow fails here.

- `incidents` is the spine: it imports none of the apps built on it (they register hooks, panels).
- The project package `reliability_studio` is shared by every app, so it imports none of them; only
  the modules that assemble the project (URLs, ASGI routing, settings, the Celery app) may.
- `detection` feeds `incidents` and imports none of the apps downstream of incidents.
- Nothing outside tests/ imports tests/: bench/ uses reliability_studio.devtools.
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APPS = {"incidents", "detection", "slos", "investigation", "remediation", "notifications"}
ASSEMBLY = {"reliability_studio/urls.py", "reliability_studio/asgi.py", "reliability_studio/celery.py"}
RULES = {
    # package: (top-level packages it must not import, files exempt)
    "incidents": (APPS - {"incidents"}, set()),
    "detection": ({"investigation", "remediation", "notifications"}, set()),
    "reliability_studio": (APPS, ASSEMBLY),
    "bench": ({"tests"}, set()),
    **{app: ({"tests"}, set()) for app in APPS},
    "demo": (APPS | {"tests"}, set()),
}


def imported_packages(path: Path) -> dict[str, int]:
    """Top-level package of every absolute import in the module → the line it is on."""
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue  # relative imports stay inside the package
        for name in names:
            found.setdefault(name.split(".")[0], node.lineno)
    return found


def modules(package: str):
    for path in sorted((ROOT / package).rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if "/migrations/" not in relative:
            yield relative, path


@pytest.mark.parametrize("package", sorted(RULES))
def test_package_imports_follow_the_flow(package):
    forbidden, exempt = RULES[package]
    violations = []
    for relative, path in modules(package):
        if relative in exempt or relative.startswith("reliability_studio/settings/"):
            continue
        for name, line in imported_packages(path).items():
            if name in forbidden:
                violations.append(f"{relative}:{line} imports {name}")
    assert not violations, "imports against the flow (docs/architecture.md):\n" + "\n".join(violations)


def test_the_rules_see_imports_inside_functions(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from detection.evidence import x\n    import tests.servers\nfrom . import y\n")
    assert imported_packages(module) == {"detection": 2, "tests": 3}
