"""The settings package: common / development / production / test, each loaded in a fresh process
with a controlled environment (settings are read once per process, so in-process checks would only
ever see the test settings pytest already loaded)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Variables that select or shape the settings: never inherited from the shell running the tests.
CONTROLLED = re.compile(
    r"^(DJANGO_SETTINGS_MODULE|SECRET_KEY|DATABASE_URL|DEBUG|CHANNEL_PREFIX|CELERY_.*|DEMO_ENABLED|SECURE_.*"
    r"|SESSION_COOKIE_.*|CSRF_COOKIE_.*|TRUST_X_FORWARDED_PROTO|ALLOWED_HOSTS|AXES_.*)$")

# Loads one settings module in a fresh interpreter and prints what the tests check. read_env is
# recorded (and does nothing), and `.env` is made to "exist", so no test depends on, or reads, a
# developer's real .env file.
PROBE = r"""
import importlib, json, pathlib, sys
import environ
reads = []
environ.Env.read_env = classmethod(lambda cls, env_file=None, **kw: reads.append(str(env_file)))
_exists = pathlib.Path.exists
pathlib.Path.exists = lambda self, *a, **k: self.name == ".env" or _exists(self, *a, **k)
m = importlib.import_module(sys.argv[1])
print(json.dumps({
    "reads": reads, "BASE_DIR": str(m.BASE_DIR), "DEBUG": m.DEBUG, "SECRET_KEY": m.SECRET_KEY,
    "CHANNEL_PREFIX": m.CHANNEL_PREFIX, "channel_prefix": m.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"],
    "cache_prefix": m.CACHES["default"]["KEY_PREFIX"], "eager": m.CELERY_TASK_ALWAYS_EAGER,
    "queue": m.CELERY_TASK_DEFAULT_QUEUE, "demo": m.DEMO_ENABLED,
    "session_secure": m.SESSION_COOKIE_SECURE, "csrf_secure": m.CSRF_COOKIE_SECURE,
    "ssl_redirect": getattr(m, "SECURE_SSL_REDIRECT", False), "hsts": getattr(m, "SECURE_HSTS_SECONDS", 0),
    "proxy_header": m.SECURE_PROXY_SSL_HEADER,
}))
"""


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not CONTROLLED.match(k)}
    env.update(extra)
    return env


def load(module: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PROBE, f"reliability_studio.settings.{module}"], cwd=ROOT,
                          env=clean_env(**env), capture_output=True, text=True, timeout=60)


def values(module: str, **env: str) -> dict:
    done = load(module, **env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


PRODUCTION_ENV = {"SECRET_KEY": "p" * 20 + "-production-secret-for-the-settings-test-0123456789",
                  "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/rs_settings_probe"}


def test_test_settings_never_read_dotenv_and_keep_their_names_apart():
    got = values("test")
    assert got["reads"] == []
    assert got["DEBUG"] is False and got["SECRET_KEY"]
    assert got["CHANNEL_PREFIX"] == got["channel_prefix"] == got["cache_prefix"] == "rs-test"
    assert got["eager"] is True and got["queue"] == "rs-test"
    assert got["demo"] is True
    assert got["session_secure"] is False and got["ssl_redirect"] is False  # test servers speak plain HTTP


def test_test_settings_follow_the_environment():
    got = values("test", CHANNEL_PREFIX="rs-x", CELERY_TASK_ALWAYS_EAGER="false", CELERY_TASK_DEFAULT_QUEUE="q1",
                 DEMO_ENABLED="false")
    assert got["channel_prefix"] == got["cache_prefix"] == "rs-x"
    assert got["eager"] is False and got["queue"] == "q1" and got["demo"] is False


def test_development_reads_the_local_dotenv_with_debug_and_a_generated_secret():
    got = values("development")
    assert got["reads"] == [str(ROOT / ".env")] and got["BASE_DIR"] == str(ROOT)
    assert got["DEBUG"] is True and len(got["SECRET_KEY"]) >= 50
    assert got["demo"] is True and got["session_secure"] is False and got["csrf_secure"] is False
    assert got["CHANNEL_PREFIX"] == "rs" and got["eager"] is False and got["queue"] == "celery"
    assert values("development", DEBUG="false")["DEBUG"] is False


def test_production_is_https_only_without_debug_or_demo():
    got = values("production", **PRODUCTION_ENV)
    assert got["reads"] == []
    assert got["DEBUG"] is False and got["SECRET_KEY"] == PRODUCTION_ENV["SECRET_KEY"]
    assert got["ssl_redirect"] is True and got["hsts"] >= 31_536_000
    assert got["session_secure"] is True and got["csrf_secure"] is True
    assert got["demo"] is False and got["eager"] is False
    assert got["proxy_header"] is None  # X-Forwarded-Proto is trusted only when asked
    behind_proxy = values("production", TRUST_X_FORWARDED_PROTO="true", DEMO_ENABLED="true", **PRODUCTION_ENV)
    assert behind_proxy["proxy_header"] == ["HTTP_X_FORWARDED_PROTO", "https"] and behind_proxy["demo"] is True


@pytest.mark.parametrize("missing", ["SECRET_KEY", "DATABASE_URL"])
def test_production_refuses_to_start_without_a_required_variable(missing):
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != missing}
    done = load("production", **env)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1] == (
        f"django.core.exceptions.ImproperlyConfigured: {missing} is not set; production settings need it in the "
        "environment (for local work use DJANGO_SETTINGS_MODULE=reliability_studio.settings.development)")


def test_production_refuses_debug():
    done = load("production", DEBUG="true", **PRODUCTION_ENV)
    assert done.returncode != 0 and "DEBUG=true is refused" in done.stderr.strip().splitlines()[-1]


def manage(*argv: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *argv], cwd=ROOT, env=clean_env(**env),
                          capture_output=True, text=True, timeout=120)


def test_manage_py_says_what_is_missing_in_one_line():
    done = manage("check", DJANGO_SETTINGS_MODULE="reliability_studio.settings.production",
                  DATABASE_URL=PRODUCTION_ENV["DATABASE_URL"])
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "ImproperlyConfigured: SECRET_KEY is not set; production settings need it in the environment "
        "(for local work use DJANGO_SETTINGS_MODULE=reliability_studio.settings.development)"]


def test_the_old_module_name_is_refused_with_the_new_names():
    done = manage("check", DJANGO_SETTINGS_MODULE="reliability_studio.settings")
    assert done.returncode == 1
    assert "use reliability_studio.settings.production, .development or .test" in done.stderr


SHOW_MODULE = "from django.conf import settings; print(settings.SETTINGS_MODULE)"


def test_default_settings_modules_per_entry_point():
    # manage.py: development. The ASGI app and Celery, started bare: production (fail closed).
    assert manage("shell", "-c", SHOW_MODULE).stdout.strip().splitlines()[-1] == "reliability_studio.settings.development"
    for module in ("reliability_studio.asgi", "reliability_studio.celery"):
        done = subprocess.run([sys.executable, "-c", f"import os, {module}; print(os.environ['DJANGO_SETTINGS_MODULE'])"],
                              cwd=ROOT, env=clean_env(**PRODUCTION_ENV), capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().splitlines()[-1] == "reliability_studio.settings.production"


def test_processes_started_by_the_tests_use_the_test_settings(db):
    from django.conf import settings

    from tests.servers import server_env

    assert settings.SETTINGS_MODULE == "reliability_studio.settings.test"
    env = server_env(settings.DATABASES["default"]["NAME"])
    done = subprocess.run([sys.executable, "manage.py", "shell", "-c", SHOW_MODULE], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.strip().splitlines()[-1:] == ["reliability_studio.settings.test"], done.stderr
    # And pytest exports its choice, so a test's plain subprocess inherits it too.
    assert os.environ["DJANGO_SETTINGS_MODULE"] == "reliability_studio.settings.test"


def test_no_module_switches_on_pytest_being_imported():
    offenders = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in {".venv", "node_modules", ".git", "__pycache__"}]
        paths = [Path(folder) / name for name in files if name.endswith(".py")]
        for path in paths:
            if path == Path(__file__).resolve():
                continue
            text = path.read_text(errors="replace")
            if re.search(r"""["']pytest["']\s+in\s+sys\.modules|\bsettings\.TESTING\b|^TESTING\s*=""", text, re.M):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
