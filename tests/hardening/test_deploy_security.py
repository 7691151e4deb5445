"""Deployment security: `manage.py check --deploy` is clean with the production settings, and
docker-compose.yml publishes no unauthenticated port beyond loopback."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]

# Variables that shape the settings are never inherited from the shell running the tests.
CONTROLLED = re.compile(
    r"^(DJANGO_SETTINGS_MODULE|SECRET_KEY|DATABASE_URL|DEBUG|DEMO_ENABLED|SECURE_.*|SESSION_COOKIE_.*"
    r"|CSRF_COOKIE_.*|TRUST_X_FORWARDED_PROTO|ALLOWED_HOSTS|AXES_.*)$")
PRODUCTION = {
    "DJANGO_SETTINGS_MODULE": "reliability_studio.settings.production",
    "SECRET_KEY": "Zq7-check-deploy-only-secret-KEY-with-enough-characters-0123456789",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/rs_check_deploy",  # check --deploy never connects
    "ALLOWED_HOSTS": "reliability.example.com",
}


def check_deploy(*options: str, **overrides: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not CONTROLLED.match(k)}
    env.update(PRODUCTION, **overrides)
    return subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING", *options],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)


def test_check_deploy_is_clean_with_the_production_settings():
    done = check_deploy()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues" in done.stdout


@pytest.mark.slow
def test_check_deploy_is_clean_with_the_demo_enabled_too():
    # docker-compose's demo stack: the chaos operations must add no schema warning either.
    done = check_deploy(DEMO_ENABLED="true")
    assert done.returncode == 0, done.stdout + done.stderr


WEAKENED = {
    "SECURE_HSTS_SECONDS": ("0", "security.W004"),
    "SECURE_SSL_REDIRECT": ("false", "security.W008"),
    "SESSION_COOKIE_SECURE": ("false", "security.W012"),
    "CSRF_COOKIE_SECURE": ("false", "security.W016"),
    "SECRET_KEY": ("short", "security.W009"),
}


def test_check_deploy_catches_each_weakened_production_setting():
    # Proves the clean run means something: each of these is flagged and fails the check (one
    # process for all, security checks only, to keep the suite fast).
    done = check_deploy("--tag", "security", **{name: value for name, (value, _) in WEAKENED.items()})
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert sorted(set(re.findall(r"security\.W\d+", output))) == sorted(check for _, check in WEAKENED.values())


# --- docker-compose.yml ------------------------------------------------------------------------------

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
# Services that answer without authentication: the demo's fault-injection API (9100), Prometheus
# with --web.enable-lifecycle (/-/quit, /-/reload), Loki and Tempo (push and query APIs).
UNAUTHENTICATED = {"demo": {9100}, "prometheus": {9090}, "loki": {3100}, "tempo": {3200, 4318}}
# The only ports anyone may reach from other machines: the control room and Grafana (both log in).
PUBLIC = {("web", 8000), ("grafana", 3000)}

SHORT_PORT = re.compile(r"^(?:(?P<ip>\[[0-9a-fA-F:]+\]|\d{1,3}(?:\.\d{1,3}){3}):)?(?:(?P<host>\d+):)?(?P<container>\d+)"
                        r"(?:/(?:tcp|udp))?$")


def published(entry) -> tuple[str, int]:
    """(host address, container port) of one `ports` entry, short or long syntax; the address is ""
    when the port is published on every interface. Anything else fails: a range or a form this
    parser does not know is a port whose exposure is unchecked."""
    if isinstance(entry, dict):
        return str(entry.get("host_ip", "")), int(entry["target"])
    match = SHORT_PORT.match(str(entry))
    assert match, f"unparsed ports entry {entry!r}"
    return (match["ip"] or ""), int(match["container"])


def test_unauthenticated_services_are_published_on_loopback_only():
    for name, ports in UNAUTHENTICATED.items():
        assert name in SERVICES, f"service {name} is gone from docker-compose.yml; update this test"
        entries = [published(entry) for entry in SERVICES[name].get("ports", [])]
        assert entries, f"{name} publishes nothing: the README's local URLs would not work"
        assert {port for _, port in entries} == ports
        for address, port in entries:
            assert address in {"127.0.0.1", "[::1]"}, f"{name}:{port} is published on {address or 'every interface'}"


def test_only_the_authenticated_ports_are_public():
    public = set()
    for name, service in SERVICES.items():
        for address, port in (published(entry) for entry in service.get("ports", [])):
            if address not in {"127.0.0.1", "[::1]"}:
                public.add((name, port))
    assert public == PUBLIC


def test_the_compose_stack_runs_production_settings_with_its_demo():
    for name in ("migrate", "web", "worker", "beat"):
        env = SERVICES[name]["environment"]
        assert env["DJANGO_SETTINGS_MODULE"] == "reliability_studio.settings.production"
        assert env["DEMO_ENABLED"] == "true"  # this stack runs the demo shop
        assert env["SECRET_KEY"].startswith("${SECRET_KEY:?")
    # Prometheus keeps its lifecycle API only because it is loopback-bound (test above).
    assert "--web.enable-lifecycle" in SERVICES["prometheus"]["command"]


def test_the_port_parser_reads_every_form_compose_allows():
    assert published("127.0.0.1:9100:9100") == ("127.0.0.1", 9100)
    assert published("9090:9090") == ("", 9090)
    assert published("8000") == ("", 8000)
    assert published("[::1]:3100:3100/tcp") == ("[::1]", 3100)
    assert published({"target": 80, "published": 8080, "host_ip": "127.0.0.1"}) == ("127.0.0.1", 80)
    with pytest.raises(AssertionError, match="unparsed"):
        published("9000-9010:9000-9010")
