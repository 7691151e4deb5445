"""docker-compose.yml cannot run here (no Docker engine), so check what would break it: each image
or build exists, each command names a management command, module or option the code has, each
environment variable is one the code reads, each healthcheck and service URL points at something
that answers. These are checked against the code, not against the compose file's own text."""
import ast
import importlib.util
import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from django.core.management import get_commands, load_command_class
from django.urls import Resolver404, resolve

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
APP_SERVICES = [name for name, svc in SERVICES.items() if svc.get("build")]
# Ports the official images listen on without being told (their documentation), for services
# compose does not publish.
IMAGE_DEFAULT_PORTS = {"postgres": 5432, "redis": 6379}


def _command(svc) -> list[list[str]]:
    """The service's command as argv lists (a `sh -c "a && b"` gives one per step)."""
    command = svc.get("command")
    if command is None:
        return []
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    if argv[:2] == ["sh", "-c"]:
        return [shlex.split(step) for step in argv[2].split("&&")]
    return [argv]


def _python_sources() -> str:
    dirs = ["reliability_studio", "incidents", "detection", "slos", "investigation", "remediation", "notifications",
            "demo"]
    return "\n".join(p.read_text() for d in dirs for p in (ROOT / d).rglob("*.py"))


def test_every_built_service_has_its_build_context_and_every_image_is_pinned():
    for name, svc in SERVICES.items():
        build = svc.get("build")
        if build:
            context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
            dockerfile = context / (build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile")
            assert dockerfile.is_file(), f"{name}: {dockerfile} does not exist"
            for line in dockerfile.read_text().splitlines():
                if line.startswith("COPY ") and "--from" not in line:
                    for source in shlex.split(line)[1:-1]:
                        present = list(context.glob(source)) if "*" in source else (context / source).exists()
                        assert present, f"{name}: the Dockerfile copies {source}, which is missing"
        else:
            image = svc["image"]
            assert ":" in image and not image.endswith(":latest"), f"{name}: pin the image's version ({image})"


def test_management_commands_and_their_options_exist():
    commands = get_commands()
    seen = 0
    for name, svc in SERVICES.items():
        for argv in _command(svc):
            if argv[:2] != ["python", "manage.py"]:
                continue
            command, args = argv[2], argv[3:]
            assert command in commands, f"{name}: no management command {command!r}"
            parser = load_command_class(commands[command], command).create_parser("manage.py", command)
            options = parser.parse_args(args)  # an unknown option exits (SystemExit) and fails the test
            for value in vars(options).values():
                if isinstance(value, str) and value.endswith((".yaml", ".yml", ".json")):
                    assert (ROOT / value).is_file(), f"{name}: {command} reads {value}, which is missing"
            seen += 1
    assert seen >= 3  # migrate, load_catalog, create_admin, collectstatic


def test_process_commands_name_modules_that_exist():
    for name, svc in SERVICES.items():
        for argv in _command(svc):
            if argv[0] == "daphne":
                module, attribute = argv[-1].split(":")
                spec = importlib.util.find_spec(module)
                assert spec is not None, f"{name}: no module {module}"
                tree = ast.parse(Path(spec.origin).read_text())
                assigned = {t.id for node in ast.walk(tree) if isinstance(node, ast.Assign) for t in node.targets
                            if isinstance(t, ast.Name)}
                assert attribute in assigned, f"{name}: {module} defines no {attribute}"
            elif argv[0] == "celery":
                app = argv[argv.index("-A") + 1]
                assert importlib.util.find_spec(f"{app}.celery") is not None, f"{name}: no Celery app in {app}"
                assert argv[argv.index("-A") + 2] in ("worker", "beat")
            elif argv[:2] == ["python", "-m"]:
                module = argv[2]
                assert importlib.util.find_spec(f"{module}.__main__") is not None, f"{name}: python -m {module}"
                if module == "demo":
                    from demo.__main__ import parse_args

                    parse_args(argv[3:])  # the demo's own parser: an unknown option exits


def test_app_environment_names_only_variables_the_code_reads():
    sources = _python_sources()
    for name in APP_SERVICES:
        for variable in SERVICES[name].get("environment", {}):
            assert re.search(r"[\"']" + variable + r"[\"']", sources), \
                f"{name}: {variable} is set in docker-compose.yml but no code reads it"
    module = SERVICES["web"]["environment"]["DJANGO_SETTINGS_MODULE"]
    assert importlib.util.find_spec(module) is not None, module


def test_every_required_compose_variable_is_documented_in_env_example():
    text = (ROOT / "docker-compose.yml").read_text()
    used = set(re.findall(r"\$\{([A-Z_]+)[:?-]", text))
    documented = set(re.findall(r"^(?:# )?([A-Z_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert used and used <= documented, used - documented


def _listening_ports(name: str) -> set[int]:
    svc = SERVICES[name]
    ports = {int(str(p).split(":")[-1].split("/")[0]) for p in svc.get("ports", [])}
    for argv in _command(svc):
        for flag in ("-p", "--port", "--control-port"):
            if flag in argv:
                ports.add(int(argv[argv.index(flag) + 1]))
    if name in IMAGE_DEFAULT_PORTS:
        ports.add(IMAGE_DEFAULT_PORTS[name])
    return ports


def test_service_urls_point_at_a_service_and_a_port_it_listens_on():
    checked = 0
    for name, svc in SERVICES.items():
        for variable, value in (svc.get("environment") or {}).items():
            if not isinstance(value, str) or "://" not in value:
                continue
            url = urlsplit(re.sub(r"\$\{[^}]*\}", "secret", value))  # compose interpolation: any value
            if url.hostname in ("localhost", "127.0.0.1"):
                continue
            assert url.hostname in SERVICES, f"{name}: {variable} points at {url.hostname}, not a compose service"
            assert url.port in _listening_ports(url.hostname), \
                f"{name}: {variable} uses port {url.port}; {url.hostname} listens on {_listening_ports(url.hostname)}"
            checked += 1
    assert checked >= 8


def test_depends_on_names_services_and_health_conditions_have_a_healthcheck():
    for name, svc in SERVICES.items():
        depends = svc.get("depends_on") or {}
        for target in depends:
            assert target in SERVICES, f"{name} depends on {target}, which is not a service"
            condition = depends[target].get("condition") if isinstance(depends, dict) else None
            if condition == "service_healthy":
                assert "healthcheck" in SERVICES[target], f"{name} waits for {target} to be healthy: no healthcheck"
            if condition == "service_completed_successfully":
                assert SERVICES[target].get("restart") == "no", f"{target} runs once: restart must be 'no'"


@pytest.mark.django_db
def test_http_healthchecks_hit_urls_that_answer(client):
    checked = 0
    for name, svc in SERVICES.items():
        test = " ".join(svc.get("healthcheck", {}).get("test", []))
        for url in re.findall(r"https?://[^'\" ]+", test):
            path = urlsplit(url).path
            try:
                resolve(path)
            except Resolver404:
                pytest.fail(f"{name}: the healthcheck asks for {path}, which no URL pattern serves")
            assert urlsplit(url).port in _listening_ports(name)
            assert client.get(path).status_code == 200, f"{name}: {path} does not answer 200"
            checked += 1
    assert checked >= 1
