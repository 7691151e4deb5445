"""Helpers shared by the benchmarks: a scratch database and percentile maths."""
from __future__ import annotations

import os
import statistics
import sys
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def recreate_database(name: str, base_url: str = "postgres://postgres@127.0.0.1:5432") -> str:
    """Drop and create a scratch database; returns its DATABASE_URL."""
    with psycopg.connect(f"{base_url}/postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return f"{base_url}/{name}"


def setup_django(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789-not-for-production")
    # The test settings (no .env, rs-test names); tasks go to workers, as served, not inline.
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "reliability_studio.settings.test")
    os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "false")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("CHANNEL_PREFIX", "rs-bench")
    import django

    django.setup()


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def median(values: list[float]) -> float:
    return statistics.median(values)


class Stack:
    """A whole running stack of its own for a benchmark: scratch database with the demo catalog and
    the default detection rules, the demo shop, Prometheus scraping it, a Celery worker and beat,
    and daphne. `stop()` ends every process."""

    def __init__(self, db_name: str, *, scrape: str = "5s", rps: float = 20, **env_extra: str):
        import tempfile

        database_url = recreate_database(db_name)
        setup_django(database_url)
        from django.core.management import call_command
        from django.db import connections

        from reliability_studio.devtools.servers import CeleryBeat, CeleryWorker, Daphne, server_env
        from reliability_studio.devtools.prometheus import start_prometheus
        from reliability_studio.devtools.shop import start_shop

        call_command("migrate", verbosity=0)
        call_command("load_catalog", "demo/catalog.yaml", verbosity=0)
        call_command("seed_detection_rules", verbosity=0)
        connections.close_all()
        self.tmp = Path(tempfile.mkdtemp(prefix=f"{db_name}-"))
        self.shop = start_shop(self.tmp, rps=rps)
        services = ("frontend", "catalog", "checkout", "payment", "database")
        targets = {f"127.0.0.1:{self.shop.port(s)}": {"service": s} for s in services}
        self.prometheus = start_prometheus(list(targets), scrape_interval=scrape, job="shop",
                                           target_labels=targets)  # as make run's config labels them
        self.env = server_env(db_name, PROMETHEUS_URL=self.prometheus.url, DEMO_CONTROL_URL=self.shop.control_url,
                              **env_extra)
        self.processes = []
        try:  # a child that fails to start must not leave the others running
            self.web = Daphne(self.env)
            self.processes.append(self.web)
            self.processes += [CeleryWorker(self.env, concurrency=2), CeleryBeat(self.env, str(self.tmp / "beat"))]
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for process in self.processes:
            process.stop()
        self.prometheus.stop()
        self.shop.stop()
