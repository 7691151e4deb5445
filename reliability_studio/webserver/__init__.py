"""Serve the ASGI app from several daphne processes sharing one listening socket.

    python -m reliability_studio.webserver [--bind 127.0.0.1] [--port 8000] [--workers N]

One daphne process serves sync views on one thread, so it uses one core at most. This parent opens
the listening sockets and starts ``--workers`` children (default ``WEB_CONCURRENCY``, else one per
core this process may run on), each ``daphne --fd <n>`` on an inherited socket. On Linux each child
gets a socket of its own bound to the same port with SO_REUSEPORT, and the kernel spreads new
connections evenly over them; elsewhere they share one. Either way: one port, no balancer in front.
WebSocket fan-out works across them because every process joins the same Redis channel layer.

A child that exits is started again (after a short pause that grows while children keep dying
within seconds of their start; after ``MAX_QUICK_DEATHS`` such deaths in a row the parent gives up
and exits non-zero, since the configuration is then broken rather than a request unlucky).
SIGTERM/SIGINT stop the children gracefully (SIGTERM, then SIGKILL after ``--graceful-timeout``).

Each child gets ``RS_WEB_WORKER=<index>``; ``WorkerHeaderMiddleware`` answers it as the
``X-Web-Worker`` header, so one can tell which process served a request. The children share a fresh
``PROMETHEUS_MULTIPROC_DIR`` (removed on exit), so /metrics on any of them counts the requests of all.
The parent needs no Django: it only manages processes.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import shutil
import sys
import tempfile
import time

DEFAULT_APP = "reliability_studio.asgi:application"
WORKER_ENV = "RS_WEB_WORKER"
MAX_QUICK_DEATHS = 5  # children dying within QUICK_DEATH_SECONDS of their start, in a row
QUICK_DEATH_SECONDS = 5.0


def default_workers(environ=os.environ) -> int:
    """``WEB_CONCURRENCY`` when set (a positive integer), else the number of usable cores."""
    raw = environ.get("WEB_CONCURRENCY", "").strip()
    if raw:
        try:
            value = int(raw)
        except ValueError:
            raise SystemExit(f"WEB_CONCURRENCY must be a positive integer, not {raw!r}") from None
        if value < 1:
            raise SystemExit(f"WEB_CONCURRENCY must be a positive integer, not {raw!r}")
        return value
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def open_sockets(host: str, port: int, count: int, backlog: int = 2048) -> list[socket.socket]:
    """`count` listening sockets on one address with SO_REUSEPORT (Linux): the kernel spreads new
    connections evenly over them, so each daphne process gets its share of keep-alive clients. One
    socket shared by all (where SO_REUSEPORT is missing) lets whichever process wakes first accept a
    whole burst: 16 clients connecting at once all landed on one of two processes
    (tests/performance/test_webserver.py checks the spread)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    reuse_port = hasattr(socket, "SO_REUSEPORT") and count > 1
    sockets = []
    try:
        for _ in range(count if reuse_port else 1):
            sock = socket.create_server((host, port), family=family, backlog=backlog, reuse_port=reuse_port)
            sock.set_inheritable(True)
            port = sock.getsockname()[1]  # port 0: the others join the one the first got
            sockets.append(sock)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class WorkerHeaderMiddleware:
    """Adds ``X-Web-Worker: <index>`` when the process runs under this server (else nothing)."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.worker = os.environ.get(WORKER_ENV)

    def __call__(self, request):
        response = self.get_response(request)
        if self.worker is not None:
            response["X-Web-Worker"] = self.worker
        return response


class Server:
    def __init__(self, sockets: list[socket.socket], workers: int, app: str = DEFAULT_APP,
                 daphne_args: list[str] | None = None, graceful_timeout: float = 10.0, out=sys.stderr):
        self.sockets = sockets  # one per worker (SO_REUSEPORT), or one shared by all
        self.workers = workers
        self.app = app
        self.daphne_args = list(daphne_args or [])
        self.graceful_timeout = graceful_timeout
        self.out = out
        self.children: dict[int, subprocess.Popen] = {}  # worker index → process
        self.started_at: dict[int, float] = {}
        self.stopping = False
        self.quick_deaths = 0
        # Each child writes its request metrics here; /metrics sums them (reliability_studio.observability).
        self.metrics_dir = tempfile.mkdtemp(prefix="rs-web-metrics-")

    def log(self, message: str) -> None:
        self.out.write(f"webserver: {message}\n")
        self.out.flush()

    def socket_of(self, index: int) -> socket.socket:
        return self.sockets[index % len(self.sockets)]

    def argv(self, index: int) -> list[str]:
        return [sys.executable, "-m", "daphne", "--fd", str(self.socket_of(index).fileno()), *self.daphne_args, self.app]

    def spawn(self, index: int) -> None:
        env = dict(os.environ, **{WORKER_ENV: str(index), "PROMETHEUS_MULTIPROC_DIR": self.metrics_dir})
        # The parent keeps every socket open: connections for a worker being restarted wait in
        # its queue instead of being refused.
        self.children[index] = subprocess.Popen(self.argv(index), env=env, pass_fds=(self.socket_of(index).fileno(),))
        self.started_at[index] = time.monotonic()

    def _stop(self, *_):
        self.stopping = True

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        host, port = self.sockets[0].getsockname()[:2]
        how = "one socket each (SO_REUSEPORT)" if len(self.sockets) > 1 else "one shared socket"
        self.log(f"{self.workers} daphne process(es) on http://{host}:{port}/, {how} (pid {os.getpid()})")
        for index in range(self.workers):
            self.spawn(index)
        code = 0
        while not self.stopping:
            for index, proc in list(self.children.items()):
                if proc.poll() is None:
                    continue
                lived = time.monotonic() - self.started_at[index]
                self.quick_deaths = self.quick_deaths + 1 if lived < QUICK_DEATH_SECONDS else 0
                if self.quick_deaths >= MAX_QUICK_DEATHS:
                    self.log(f"worker {index} exited with code {proc.returncode}; {self.quick_deaths} workers died "
                             f"within {QUICK_DEATH_SECONDS:.0f}s of starting in a row: giving up")
                    self.stopping, code = True, 1
                    break
                pause = min(5.0, 0.2 * 2 ** self.quick_deaths) if self.quick_deaths else 0.0
                self.log(f"worker {index} (pid {proc.pid}) exited with code {proc.returncode}; restarting")
                deadline = time.monotonic() + pause
                while not self.stopping and time.monotonic() < deadline:
                    time.sleep(0.05)
                if not self.stopping:
                    self.spawn(index)
            time.sleep(0.2)
        self.shutdown()
        return code

    def shutdown(self) -> None:
        for proc in self.children.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.graceful_timeout
        for proc in self.children.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for sock in self.sockets:
            sock.close()
        shutil.rmtree(self.metrics_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     epilog="Arguments after -- are passed to every daphne process.")
    parser.add_argument("--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=None,
                        help="daphne processes (default: WEB_CONCURRENCY, else one per core)")
    parser.add_argument("--app", default=DEFAULT_APP)
    parser.add_argument("--graceful-timeout", type=float, default=10.0)
    raw = sys.argv[1:] if argv is None else argv
    extra: list[str] = []
    if "--" in raw:
        raw, extra = raw[:raw.index("--")], raw[raw.index("--") + 1:]
    args = parser.parse_args(raw)
    workers = default_workers() if args.workers is None else args.workers
    if workers < 1:
        parser.error("--workers must be at least 1")
    try:
        sockets = open_sockets(args.bind, args.port, workers)
    except OSError as exc:
        print(f"webserver: cannot listen on {args.bind}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return Server(sockets, workers, args.app, extra, args.graceful_timeout).run()
