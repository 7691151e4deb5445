"""Run the whole local stack in one terminal: web (daphne processes under
reliability_studio.webserver, one per core unless WEB_CONCURRENCY says otherwise), Celery worker and beat, the demo
workload and Prometheus scraping it, plus Loki and Tempo when their binaries are found. Output is
prefixed per process; Ctrl-C stops everything.

Loki and Tempo are found through ``LOKI_BIN`` / ``TEMPO_BIN`` or as ``loki`` / ``tempo`` on PATH
and run on loopback with ``deploy/loki-local.yaml`` / ``deploy/tempo-local.yaml`` (Tempo 2.x:
``deploy/tempo-local-2.yaml``). Then the product gets ``LOKI_URL`` / ``TEMPO_URL`` (Tempo's query
API) and the demo ``DEMO_LOKI_URL`` / ``DEMO_TEMPO_OTLP_URL`` (Tempo's OTLP receiver). Without a
binary one line says so and the product's URL stays unset, so investigations report that source
as "not configured" instead of "down".

This is what `make run` ends with; every process is a plain subprocess, so the same commands work
under systemd, Kubernetes or docker-compose.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

COLORS = ["\033[36m", "\033[33m", "\033[35m", "\033[32m", "\033[34m", "\033[31m"]
RESET = "\033[0m"

# Loopback addresses of the local Loki and Tempo; deploy/loki-local.yaml and
# deploy/tempo-local*.yaml listen on exactly these (tests/demo/test_devstack_backends.py checks).
LOKI_HTTP = "127.0.0.1:3100"
LOKI_GRPC = "127.0.0.1:9096"
TEMPO_HTTP = "127.0.0.1:3200"  # query API: what the product's TEMPO_URL points at
TEMPO_GRPC = "127.0.0.1:9095"
TEMPO_OTLP_HTTP = "127.0.0.1:4318"  # OTLP/HTTP receiver: where the demo pushes spans
TEMPO_MEMBERLIST = "127.0.0.1:7946"
LOKI_CONFIG = "deploy/loki-local.yaml"
TEMPO_CONFIG = "deploy/tempo-local.yaml"  # Tempo 3.x
TEMPO2_CONFIG = "deploy/tempo-local-2.yaml"  # Tempo 2.x (has ingester/compactor, no live store)
# Processes whose exit does not stop the stack.
OPTIONAL_PROCESSES = ("loki", "tempo")
# Backend log lines below this level are not shown in the devstack terminal.
_QUIET_BACKEND_LINE = re.compile(r"\blevel=(debug|info)\b")


@dataclass
class Backends:
    """What devstack adds for Loki/Tempo: processes, env for the product and the demo, notes."""

    procs: dict[str, list[str]] = field(default_factory=dict)
    product_env: dict[str, str] = field(default_factory=dict)
    demo_env: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def find_binary(name: str, environ, which=shutil.which) -> str | None:
    """``<NAME>_BIN`` if set (it must be an executable file), else ``name`` on PATH."""
    explicit = environ.get(f"{name.upper()}_BIN", "").strip()
    search = environ.get("PATH")
    if explicit:
        path = Path(explicit).expanduser()
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
        return which(explicit, path=search)  # e.g. LOKI_BIN=loki-3.1
    return which(name, path=search)


def tempo_major_version(binary: str) -> int | None:
    """Major version from ``tempo -version`` ("tempo, version 2.5.0 (...)"), None if unknown."""
    try:
        out = subprocess.run([binary, "-version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"version v?(\d+)\.", out.stdout + out.stderr)
    return int(match.group(1)) if match else None


def telemetry_backends(base_dir: Path, run_dir: Path, environ=None, which=shutil.which,
                       tempo_version=tempo_major_version, start: bool = True) -> Backends:
    """Plan the local Loki and Tempo: start the ones whose binary is found, point product and demo at them.

    A ``LOKI_URL`` / ``TEMPO_URL`` already set (environment or .env) wins: that backend is not
    started locally and the product keeps its URL. The demo's push URLs are always set
    explicitly (empty = no export), so the product's TEMPO_URL (query API) never becomes the
    demo's push target; Loki's push and query URL are the same, so DEMO_LOKI_URL defaults to
    LOKI_URL. ``start=False`` (``--no-telemetry-backends``) only sets the demo's URLs.
    """
    environ = os.environ if environ is None else environ
    plan = Backends()
    plan.demo_env["DEMO_LOKI_URL"] = environ.get("DEMO_LOKI_URL", environ.get("LOKI_URL", ""))
    plan.demo_env["DEMO_TEMPO_OTLP_URL"] = environ.get("DEMO_TEMPO_OTLP_URL", "")
    if not start:
        return plan
    missing = []

    if environ.get("LOKI_URL"):
        plan.notes.append(f"Loki: using LOKI_URL={environ['LOKI_URL']} (not starting a local Loki)")
    elif loki := find_binary("loki", environ, which):
        (run_dir / "loki").mkdir(parents=True, exist_ok=True)
        plan.procs["loki"] = [loki, f"-config.file={base_dir / LOKI_CONFIG}"]
        plan.product_env["LOKI_URL"] = f"http://{LOKI_HTTP}"
        if "DEMO_LOKI_URL" not in environ:  # an explicit push target wins
            plan.demo_env["DEMO_LOKI_URL"] = f"http://{LOKI_HTTP}"
    else:
        missing.append("Loki")

    if environ.get("TEMPO_URL"):
        plan.notes.append(f"Tempo: using TEMPO_URL={environ['TEMPO_URL']} (not starting a local Tempo)")
    elif tempo := find_binary("tempo", environ, which):
        (run_dir / "tempo").mkdir(parents=True, exist_ok=True)
        config = TEMPO2_CONFIG if tempo_version(tempo) == 2 else TEMPO_CONFIG
        plan.procs["tempo"] = [tempo, f"-config.file={base_dir / config}"]
        plan.product_env["TEMPO_URL"] = f"http://{TEMPO_HTTP}"
        if "DEMO_TEMPO_OTLP_URL" not in environ:
            plan.demo_env["DEMO_TEMPO_OTLP_URL"] = f"http://{TEMPO_OTLP_HTTP}"
    else:
        missing.append("Tempo")

    if missing:
        what = " and ".join(missing)
        hint = " / ".join(f"{name.upper()}_BIN" for name in missing)
        sources = {"Loki": "logs", "Tempo": "traces"}
        plan.notes.append(
            f"{what} not found (set {hint} or put {' / '.join(m.lower() for m in missing)} on PATH): "
            f"investigations will report {' and '.join(sources[m] for m in missing)} as not configured")
    return plan


class Command(BaseCommand):
    help = "Run web, worker, beat, the demo workload and Prometheus together (Ctrl-C stops all)."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--web-workers", type=int, default=None,
                            help="daphne processes for the web server (default: WEB_CONCURRENCY, else one per core)")
        parser.add_argument("--prometheus-port", type=int, default=9090)
        parser.add_argument("--scrape-interval", default="5s")
        parser.add_argument("--demo-base-port", type=int, default=9101)
        parser.add_argument("--demo-control-port", type=int, default=9100)
        parser.add_argument("--no-demo", action="store_true", help="do not start the demo workload")
        parser.add_argument("--no-telemetry-backends", action="store_true",
                            help="do not start Loki/Tempo even when their binaries are found")

    def handle(self, *args, **opts):
        run_dir = Path(settings.BASE_DIR) / ".run"
        run_dir.mkdir(exist_ok=True)
        py = sys.executable
        backends = telemetry_backends(Path(settings.BASE_DIR), run_dir,
                                      start=not opts["no_telemetry_backends"])
        for note in backends.notes:
            self.stdout.write(note)
        procs = {
            **backends.procs,
            # Several daphne processes on one port (WEB_CONCURRENCY, default one per core).
            "web": [py, "-m", "reliability_studio.webserver", "--bind", "127.0.0.1", "--port", str(opts["port"]),
                    *(["--workers", str(opts["web_workers"])] if opts["web_workers"] else [])],
            "worker": [py, "-m", "celery", "-A", "reliability_studio", "worker", "-l", "INFO", "--concurrency", "2"],
            "beat": [py, "-m", "celery", "-A", "reliability_studio", "beat", "-l", "WARNING",
                     "--schedule", str(run_dir / "celerybeat-schedule")],
        }
        if not opts["no_demo"]:
            procs["demo"] = [py, "-m", "demo", "--host", "127.0.0.1", "--base-port", str(opts["demo_base_port"]),
                             "--control-port", str(opts["demo_control_port"])]
            prometheus = shutil.which("prometheus")
            if prometheus is None:
                raise CommandError("prometheus is not installed; run `apt-get install prometheus` (make run does it as root)")
            config = run_dir / "prometheus.yml"
            subprocess.run(
                [py, "-m", "demo.prometheus_config", "--out", str(config), "--interval", opts["scrape_interval"],
                 "--host", "127.0.0.1", "--base-port", str(opts["demo_base_port"])],
                check=True,
            )
            procs["prometheus"] = [
                prometheus, f"--config.file={config}", f"--storage.tsdb.path={run_dir / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{opts['prometheus_port']}", "--web.enable-lifecycle",
                "--storage.tsdb.retention.time=2d",
            ]
        envs = {name: backends.product_env for name in ("web", "worker", "beat")}
        envs["demo"] = backends.demo_env
        self.supervise(procs, envs)

    def supervise(self, commands: dict[str, list[str]], envs: dict[str, dict[str, str]] | None = None) -> None:
        """Run ``commands``; ``envs`` adds variables per process on top of this environment."""
        width = max(map(len, commands))
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        envs = envs or {}
        running: dict[str, subprocess.Popen] = {}
        stopping = threading.Event()

        def pump(name, proc, color):
            for line in proc.stdout:
                if name == "demo" and '"level":"info"' in line:
                    continue  # one line per demo request would drown the terminal; warnings still show
                if name in ("loki", "tempo") and _QUIET_BACKEND_LINE.search(line):
                    continue
                sys.stdout.write(f"{color}{name:<{width}} |{RESET} {line}")
                sys.stdout.flush()

        for i, (name, argv) in enumerate(commands.items()):
            proc = subprocess.Popen(argv, cwd=settings.BASE_DIR, env={**env, **envs.get(name, {})},
                                    stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, start_new_session=True)
            running[name] = proc
            threading.Thread(target=pump, args=(name, proc, COLORS[i % len(COLORS)]), daemon=True).start()

        def stop(*_):
            stopping.set()

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        self.stdout.write(f"Reliability Studio is starting: http://127.0.0.1:{self._web_port(commands)}/ (Ctrl-C stops)")
        failed = None
        while not stopping.is_set():
            for name, proc in list(running.items()):
                if proc.poll() is not None:
                    if name in OPTIONAL_PROCESSES:
                        # A local Loki/Tempo failing must not take the rest down; the product
                        # keeps its URL and reports that source as down, which is then true.
                        self.stdout.write(f"{name} exited with code {proc.returncode}; continuing without it")
                        del running[name]
                        continue
                    failed = f"{name} exited with code {proc.returncode}; stopping the rest"
                    stopping.set()
                    break
            time.sleep(0.3)
        self.stdout.write("\nstopping: " + ", ".join(running))
        for proc in running.values():
            if proc.poll() is None:
                # Only the main process: Celery and the web server shut their own children down gracefully.
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in running.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        if failed:
            raise CommandError(failed)
        self.stdout.write("stopped cleanly")

    @staticmethod
    def _web_port(commands) -> str:
        argv = commands["web"]
        flag = "--port" if "--port" in argv else "-p"
        return argv[argv.index(flag) + 1]
