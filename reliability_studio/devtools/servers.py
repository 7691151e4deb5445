"""Start the real web server (daphne) and helpers for tests and benchmarks that need one."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode} before {url} answered")
        try:
            requests.get(url, timeout=1)
            return
        except (requests.ConnectionError, requests.Timeout):  # not listening yet, or slow on a busy machine
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


def server_env(database_name: str, **extra: str) -> dict[str, str]:
    """Environment for a child process that must share the test database and channel prefix."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    env = dict(os.environ)
    env.update(
        # A queue of this run's own: a developer's running worker must never take test tasks.
        CELERY_TASK_DEFAULT_QUEUE=f"rs-test-{os.getpid()}",
        CELERY_TASK_ALWAYS_EAGER="false",
        DATABASE_URL=f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{database_name}",
        REDIS_URL=settings.REDIS_URL,
        CHANNEL_PREFIX=settings.CHANNEL_PREFIX,
        SECRET_KEY="test-only-secret-key-not-for-production-0123456789",
        DEBUG="false",
        SESSION_COOKIE_SECURE="false",
        CSRF_COOKIE_SECURE="false",
        LOG_LEVEL="WARNING",
        DJANGO_SETTINGS_MODULE="reliability_studio.settings.test",
    )
    env.update(extra)
    return env


class _Process:
    """A child process in its own session; stderr goes to a file so a chatty child never blocks
    on a full pipe."""

    def _start(self, argv: list[str], env: dict[str, str]) -> None:
        self.log = tempfile.NamedTemporaryFile(prefix="rs-child-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=self.log,
                                     start_new_session=True)

    def stop(self, timeout: float = 15) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log.close()


class Daphne(_Process):
    """One daphne process serving reliability_studio.asgi on a loopback port."""

    def __init__(self, env: dict[str, str], port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._start([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port),
                     "reliability_studio.asgi:application"], env)
        try:
            wait_http(self.url + "/healthz", proc=self.proc)
        except Exception:
            self.stop()
            raise


class WebServer(_Process):
    """reliability_studio.webserver: `workers` daphne processes sharing one loopback socket."""

    def __init__(self, env: dict[str, str], workers: int, port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._start([sys.executable, "-m", "reliability_studio.webserver", "--bind", "127.0.0.1",
                     "--port", str(self.port), "--workers", str(workers)], env)
        try:
            wait_http(self.url + "/healthz", timeout=60, proc=self.proc)
        except Exception:
            self.stop()
            raise

    def children(self) -> list[int]:
        """PIDs of the daphne processes (the parent's children)."""
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(pid) for pid in path.read_text().split()] if path.exists() else []


def login(base_url: str, username: str, password: str) -> requests.Session:
    """Sign in through the real login form (CSRF included) and return the session."""
    session = requests.Session()
    session.get(f"{base_url}/accounts/login/", timeout=5)
    response = session.post(
        f"{base_url}/accounts/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": session.cookies["csrftoken"]},
        headers={"Referer": f"{base_url}/accounts/login/"},
        timeout=5,
        allow_redirects=False,
    )
    if response.status_code != 302:
        raise RuntimeError(f"login failed for {username}: HTTP {response.status_code}")
    return session


class CeleryWorker(_Process):
    """A real Celery worker process (prefork) consuming the queue named in its environment."""

    def __init__(self, env: dict[str, str], concurrency: int = 4):
        self.queue = env["CELERY_TASK_DEFAULT_QUEUE"]
        self._start([sys.executable, "-m", "celery", "-A", "reliability_studio", "worker", "-Q", self.queue,
                     "--concurrency", str(concurrency), "--pool", "prefork", "-l", "WARNING", "--without-gossip",
                     "--without-mingle", "--without-heartbeat"], env)


class CeleryBeat(_Process):
    """A real Celery beat process with a throwaway schedule file."""

    def __init__(self, env: dict[str, str], schedule_path: str):
        self._start([sys.executable, "-m", "celery", "-A", "reliability_studio", "beat", "-l", "WARNING",
                     "--schedule", schedule_path], env)
