"""Check that PostgreSQL and Redis answer, and create the database if it is missing.

Each problem is one line with the fix, and a non-zero exit, so `make run` stops before anything
half-starts.
"""
import psycopg
import redis
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from psycopg import sql

PG_FIX = ("start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`, "
          "or point DATABASE_URL at a reachable server")
REDIS_FIX = ("start it with `redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no`, "
             "or point REDIS_URL at a reachable server")


class Command(BaseCommand):
    help = "Check PostgreSQL and Redis; create the database if missing."

    def handle(self, *args, **options):
        db = settings.DATABASES["default"]
        where = f"{db.get('HOST') or 'localhost'}:{db.get('PORT') or 5432}"
        params = {k: v for k, v in {"host": db.get("HOST"), "port": db.get("PORT"), "user": db.get("USER"),
                                    "password": db.get("PASSWORD")}.items() if v}
        try:
            with psycopg.connect(dbname="postgres", connect_timeout=3, autocommit=True, **params) as conn:
                exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db["NAME"]]).fetchone()
                if not exists:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db["NAME"])))
                    self.stdout.write(f"created database {db['NAME']}")
        except psycopg.OperationalError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CommandError(f"PostgreSQL at {where} is unreachable ({first}); {PG_FIX}") from None
        try:
            redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=3).ping()
        except redis.RedisError as exc:
            raise CommandError(f"Redis at {settings.REDIS_URL} is unreachable ({exc}); {REDIS_FIX}") from None
        self.stdout.write(f"PostgreSQL ({where}/{db['NAME']}) and Redis ({settings.REDIS_URL}) are reachable")
