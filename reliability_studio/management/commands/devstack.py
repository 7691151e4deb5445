"""Run the whole local stack in one terminal: web (daphne), Celery worker and beat, the demo
workload and Prometheus scraping it. Output is prefixed per process; Ctrl-C stops everything.

This is what `make run` ends with; every process is a plain subprocess, so the same commands work
under systemd, Kubernetes or docker-compose.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

COLORS = ["\033[36m", "\033[33m", "\033[35m", "\033[32m", "\033[34m", "\033[31m"]
RESET = "\033[0m"


class Command(BaseCommand):
    help = "Run web, worker, beat, the demo workload and Prometheus together (Ctrl-C stops all)."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--prometheus-port", type=int, default=9090)
        parser.add_argument("--scrape-interval", default="5s")
        parser.add_argument("--demo-base-port", type=int, default=9101)
        parser.add_argument("--demo-control-port", type=int, default=9100)
        parser.add_argument("--no-demo", action="store_true", help="do not start the demo workload")

    def handle(self, *args, **opts):
        run_dir = Path(settings.BASE_DIR) / ".run"
        run_dir.mkdir(exist_ok=True)
        py = sys.executable
        procs = {
            "web": [py, "-m", "daphne", "-b", "127.0.0.1", "-p", str(opts["port"]), "reliability_studio.asgi:application"],
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
        self.supervise(procs)

    def supervise(self, commands: dict[str, list[str]]) -> None:
        width = max(map(len, commands))
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        running: dict[str, subprocess.Popen] = {}
        stopping = threading.Event()

        def pump(name, proc, color):
            for line in proc.stdout:
                if name == "demo" and '"level":"info"' in line:
                    continue  # one line per demo request would drown the terminal; warnings still show
                sys.stdout.write(f"{color}{name:<{width}} |{RESET} {line}")
                sys.stdout.flush()

        for i, (name, argv) in enumerate(commands.items()):
            proc = subprocess.Popen(argv, cwd=settings.BASE_DIR, env=env, stdout=subprocess.PIPE,
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
            for name, proc in running.items():
                if proc.poll() is not None:
                    failed = f"{name} exited with code {proc.returncode}; stopping the rest"
                    stopping.set()
                    break
            time.sleep(0.3)
        self.stdout.write("\nstopping: " + ", ".join(running))
        for proc in running.values():
            if proc.poll() is None:
                # Only the main process: Celery and daphne shut their own children down gracefully.
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
        return argv[argv.index("-p") + 1]
