"""Settings shared by every environment (development, production, test import this module).

Everything comes from the environment (12-factor, django-environ); see `.env.example` for every
variable. This module never reads `.env` and never makes up a secret: `development` reads the local
`.env` (written by `make run`), `production` insists on SECRET_KEY and DATABASE_URL, `test` has its
own defaults. Choose one with DJANGO_SETTINGS_MODULE=reliability_studio.settings.<name>.
"""
from __future__ import annotations

import warnings
from datetime import timedelta
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()

# Each environment module sets DEBUG and SECRET_KEY itself.
DEBUG = False
SECRET_KEY = ""

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI / ReDoc assets from PyPI, no CDN
    "channels",
    "axes",  # login rate limiting (AXES_* below)
    "reliability_studio",
    "incidents",
    "slos",
    "detection",
    "investigation",
    "remediation",
    "notifications",
]

MIDDLEWARE = [
    "reliability_studio.observability.RequestMetricsMiddleware",
    # X-Web-Worker: which daphne process of reliability_studio.webserver served the request.
    "reliability_studio.webserver.WorkerHeaderMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",  # static files under daphne (which serves none itself)
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "reliability_studio.access.TrustedProxyUserMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # CSP frame-ancestors for GRAFANA_FRAME_ORIGINS (X-Frame-Options DENY when none is set).
    "reliability_studio.framing.FrameAncestorsMiddleware",
    # Turns a login refused by axes (too many failures) into the lockout page; keep it last.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "reliability_studio.urls"
ASGI_APPLICATION = "reliability_studio.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "reliability_studio.access.role_context",
            ],
        },
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/reliability_studio"),
}
# A connection pool per process (psycopg_pool). Under ASGI every request's sync code may run on a
# different thread, so persistent per-thread connections (CONN_MAX_AGE) would pile up until
# PostgreSQL refuses clients; a pool bounds them. DB_POOL_MAX_SIZE=0 turns the pool off.
DB_POOL_MAX_SIZE = env.int("DB_POOL_MAX_SIZE", default=10)
if DB_POOL_MAX_SIZE > 0:
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {"min_size": 1, "max_size": DB_POOL_MAX_SIZE, "timeout": 10}
    # The pool checks a connection before handing it out: after a PostgreSQL restart the first
    # request gets a fresh connection instead of a 500 (tests/faults/test_postgres_restarted.py).
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=0)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")


def redis_layers(redis_url: str, prefix: str) -> tuple[dict, dict]:
    """CHANNEL_LAYERS and CACHES on one Redis, their keys under `prefix` (several installs, or the
    tests and a running demo, can share a Redis)."""
    channel_layers = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [redis_url], "prefix": prefix, "capacity": 1000, "expiry": 30},
        }
    }
    caches = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url,
                          "KEY_PREFIX": prefix}}
    return channel_layers, caches


CHANNEL_PREFIX = env.str("CHANNEL_PREFIX", default="rs")
CHANNEL_LAYERS, CACHES = redis_layers(REDIS_URL, CHANNEL_PREFIX)
# How many recent live events Redis keeps so a page can catch up on connect from the cursor it was
# rendered with (incidents/stream.py); a page whose cursor is older re-fetches everything.
LIVE_CATCHUP_EVENTS = env.int("LIVE_CATCHUP_EVENTS", default=1000)

# Celery: the broker is the same Redis; beat's schedule lives in reliability_studio/celery.py.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=REDIS_URL)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A message a killed worker had taken (acks_late) goes back to the queue after the visibility
# timeout; it must exceed the task time limit and the longest countdown. The restore sweep runs
# every second instead of about every 100 s (tests/faults/test_worker_killed.py).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT_SECONDS", default=900),
    "unacked_restore_throttle": 1,
}
# Tasks run on workers; the test settings run them inline by default.
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="celery")

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    # First: refuses a locked-out username+address before any password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    "reliability_studio.access.TrustedProxyUserBackend",
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

# Login rate limiting (django-axes) on every form that calls authenticate(): the sign-in page, the
# admin's and the browsable API's. After AXES_FAILURE_LIMIT failures for one username from one
# address, that pair is refused for AXES_COOLOFF_MINUTES with a 429 page; a success resets the count.
# API tokens never go through authenticate(), so token clients are not affected. Behind a reverse
# proxy every client has the proxy's address: the lock is then per username (documented).
AXES_ENABLED = env.bool("AXES_ENABLED", default=True)
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_HTTP_RESPONSE_CODE = 429
AXES_VERBOSE = False  # attempts are rows in the database (admin: Axes → access attempts)

# Reverse-proxy authentication (the way Grafana's auth proxy works). Off by default; when on, the
# header is trusted only from the listed proxy addresses, never from clients.
AUTH_PROXY_ENABLED = env.bool("AUTH_PROXY_ENABLED", default=False)
AUTH_PROXY_HEADER = env.str("AUTH_PROXY_HEADER", default="X-WEBAUTH-USER")
AUTH_PROXY_TRUSTED_IPS = env.list("AUTH_PROXY_TRUSTED_IPS", default=["127.0.0.1", "::1"])
AUTH_PROXY_AUTO_CREATE = env.bool("AUTH_PROXY_AUTO_CREATE", default=True)
AUTH_PROXY_DEFAULT_ROLE = env.str("AUTH_PROXY_DEFAULT_ROLE", default="viewer")

# Framing: only the configured Grafana origin(s) may embed the control room.
GRAFANA_FRAME_ORIGINS = env.list("GRAFANA_FRAME_ORIGINS", default=[])
X_FRAME_OPTIONS = "DENY"
# security.W002 looks for Django's XFrameOptionsMiddleware by name; FrameAncestorsMiddleware above is
# a subclass of it that also sends CSP frame-ancestors (tests/control_room/test_framing.py).
SILENCED_SYSTEM_CHECKS = ["security.W002"]

# Behind a TLS-terminating proxy, trust its X-Forwarded-Proto (only if it always sets or strips it).
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("TRUST_X_FORWARDED_PROTO", default=False) else None
# Secure cookies unless turned off; development and test (plain HTTP on loopback) default them off.
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
SESSION_COOKIE_SAMESITE = env.str("SESSION_COOKIE_SAMESITE", default="Lax")
CSRF_COOKIE_SAMESITE = env.str("CSRF_COOKIE_SAMESITE", default="Lax")
SECURE_CONTENT_TYPE_NOSNIFF = True

# Opt into Django 6's default now: a URL typed without a scheme (runbook links) means https.
FORMS_URLFIELD_ASSUME_HTTPS = True

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles"))
# WhiteNoise also serves straight from the static folders, so `collectstatic` is optional (and a
# missing STATIC_ROOT is not worth a warning at every start).
WHITENOISE_USE_FINDERS = True
warnings.filterwarnings("ignore", message="No directory at: ", category=UserWarning)

# Bodies above this are refused before parsing (413 with a JSON message on the API).
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=1024 * 1024)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: its WWW-Authenticate header is what turns "not authenticated" into a 401.
        # Hashed API tokens (reliability_studio.models.ApiToken); the key is shown once.
        "reliability_studio.access.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["reliability_studio.access.RolePermission"],
    "DEFAULT_PAGINATION_CLASS": "reliability_studio.api.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend", "rest_framework.filters.OrderingFilter"],
    "DEFAULT_SCHEMA_CLASS": "incidents.api.schema.AutoSchema",  # documents the JSON error responses
    "EXCEPTION_HANDLER": "reliability_studio.api.exception_handler",
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser", "rest_framework.parsers.FormParser"],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Reliability Studio API",
    "DESCRIPTION": "Incidents, services, timelines and tasks of the Reliability Studio control plane.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Choice sets used under several field names get one stable component name each.
    "ENUM_NAME_OVERRIDES": {
        "SeverityEnum": "incidents.models.Severity",
        "IncidentStatusEnum": "incidents.models.Status",
        "IncidentSourceEnum": "incidents.models.Source",
        "SLOStatusEnum": "slos.models.SLOStatus",
    },
}

# Telemetry sources (clients in reliability_studio/telemetry). Empty URL = source not configured.
PROMETHEUS_URL = env.str("PROMETHEUS_URL", default="http://127.0.0.1:9090")
PROMETHEUS_TOKEN = env.str("PROMETHEUS_TOKEN", default="")
# Range-query answers uncompressed by default (cheaper on loopback/LAN); true over a slow link.
PROMETHEUS_COMPRESSION = env.bool("PROMETHEUS_COMPRESSION", default=False)
LOKI_URL = env.str("LOKI_URL", default="")
LOKI_TOKEN = env.str("LOKI_TOKEN", default="")
LOKI_TENANT = env.str("LOKI_TENANT", default="")
TEMPO_URL = env.str("TEMPO_URL", default="")
TEMPO_TOKEN = env.str("TEMPO_TOKEN", default="")
GRAFANA_URL = env.str("GRAFANA_URL", default="")
GRAFANA_TOKEN = env.str("GRAFANA_TOKEN", default="")
KUBERNETES_KUBECONFIG = env.str("KUBERNETES_KUBECONFIG", default="")
KUBERNETES_IN_CLUSTER = env.bool("KUBERNETES_IN_CLUSTER", default=False)
KUBERNETES_NAMESPACES = env.list("KUBERNETES_NAMESPACES", default=["default"])
TELEMETRY_TIMEOUT_SECONDS = env.float("TELEMETRY_TIMEOUT_SECONDS", default=10.0)
TELEMETRY_RETRIES = env.int("TELEMETRY_RETRIES", default=2)
TELEMETRY_BREAKER_FAIL_MAX = env.int("TELEMETRY_BREAKER_FAIL_MAX", default=5)
TELEMETRY_BREAKER_RESET_SECONDS = env.float("TELEMETRY_BREAKER_RESET_SECONDS", default=30.0)

# Detection: alerts on connected services within the grouping window join one incident; a firing
# within the reopen window reopens the last incident; auto-resolve holds per severity (-1 = never).
DETECTION_GROUPING_WINDOW_SECONDS = env.int("DETECTION_GROUPING_WINDOW_SECONDS", default=600)
DETECTION_REOPEN_WINDOW_SECONDS = env.int("DETECTION_REOPEN_WINDOW_SECONDS", default=900)
DETECTION_AUTO_RESOLVE_HOLD_SECONDS = {
    severity: float(seconds)
    for severity, seconds in (
        item.split("=", 1)
        for item in env.list("DETECTION_AUTO_RESOLVE_HOLD", default=["critical=300", "high=180", "medium=120", "low=60"])
    )
}
DETECTION_DISPATCH_SECONDS = env.float("DETECTION_DISPATCH_SECONDS", default=1.0)
# At most one "values moved" live event per this many seconds (the detection page does not poll); 0: none.
DETECTION_VALUES_EVENT_SECONDS = env.int("DETECTION_VALUES_EVENT_SECONDS", default=10)
DETECTION_BATCH_SIZE = env.int("DETECTION_BATCH_SIZE", default=25)

# Remediation: runbooks in REMEDIATION_RUNBOOK_DIR (manage.py load_runbooks). The kill switch stops
# every action (the admin has a toggle too); at most RATE_LIMIT_COUNT actions per target per window;
# automatic runs stop after BREAKER_FAILURES failed or ineffective ones in a row. After an action the
# incident's alerts are watched for VERIFY_SECONDS (a step may set its own), checked every
# VERIFY_INTERVAL_SECONDS by beat.
REMEDIATION_RUNBOOK_DIR = env.str("REMEDIATION_RUNBOOK_DIR", default="runbooks")
REMEDIATION_KILL_SWITCH = env.bool("REMEDIATION_KILL_SWITCH", default=False)
REMEDIATION_RATE_LIMIT_COUNT = env.int("REMEDIATION_RATE_LIMIT_COUNT", default=3)
REMEDIATION_RATE_LIMIT_WINDOW_SECONDS = env.int("REMEDIATION_RATE_LIMIT_WINDOW_SECONDS", default=600)
REMEDIATION_BREAKER_FAILURES = env.int("REMEDIATION_BREAKER_FAILURES", default=3)
REMEDIATION_BREAKER_WINDOW_SECONDS = env.int("REMEDIATION_BREAKER_WINDOW_SECONDS", default=3600)
REMEDIATION_VERIFY_SECONDS = env.int("REMEDIATION_VERIFY_SECONDS", default=180)
REMEDIATION_VERIFY_INTERVAL_SECONDS = env.float("REMEDIATION_VERIFY_INTERVAL_SECONDS", default=2.0)
REMEDIATION_EXECUTION_TIMEOUT_SECONDS = env.int("REMEDIATION_EXECUTION_TIMEOUT_SECONDS", default=600)
REMEDIATION_DEFAULT_NAMESPACE = env.str("REMEDIATION_DEFAULT_NAMESPACE", default="default")
REMEDIATION_WEBHOOK_SECRET = env.str("REMEDIATION_WEBHOOK_SECRET", default="")
REMEDIATION_WEBHOOK_TIMEOUT_SECONDS = env.float("REMEDIATION_WEBHOOK_TIMEOUT_SECONDS", default=5.0)
REMEDIATION_WEBHOOK_MAX_RETRIES = env.int("REMEDIATION_WEBHOOK_MAX_RETRIES", default=2)
REMEDIATION_WEBHOOK_BACKOFF_SECONDS = env.float("REMEDIATION_WEBHOOK_BACKOFF_SECONDS", default=0.5)

# Notifications: email through Django's SMTP backend, Slack, Teams, PagerDuty, signed webhooks.
# Links in messages use NOTIFICATIONS_BASE_URL; outgoing calls refuse loopback and link-local /
# metadata addresses unless allowed; failed attempts retry with exponential backoff (bounded).
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_USE_SSL = env.bool("EMAIL_USE_SSL", default=False)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="reliability-studio@localhost")
NOTIFICATIONS_EMAIL_DOMAIN = env.str("NOTIFICATIONS_EMAIL_DOMAIN", default="reliability-studio.local")
NOTIFICATIONS_BASE_URL = env.str("NOTIFICATIONS_BASE_URL", default="http://localhost:8000")
NOTIFICATIONS_ACK_LINK_MAX_AGE_SECONDS = env.int("NOTIFICATIONS_ACK_LINK_MAX_AGE_SECONDS", default=24 * 3600)
NOTIFICATIONS_ACK_ANONYMOUS = env.bool("NOTIFICATIONS_ACK_ANONYMOUS", default=False)
NOTIFICATIONS_HTTP_TIMEOUT_SECONDS = env.float("NOTIFICATIONS_HTTP_TIMEOUT_SECONDS", default=5.0)
NOTIFICATIONS_MAX_ATTEMPTS = env.int("NOTIFICATIONS_MAX_ATTEMPTS", default=5)
NOTIFICATIONS_RETRY_BACKOFF_SECONDS = env.float("NOTIFICATIONS_RETRY_BACKOFF_SECONDS", default=10.0)
NOTIFICATIONS_RETRY_BACKOFF_MAX_SECONDS = env.float("NOTIFICATIONS_RETRY_BACKOFF_MAX_SECONDS", default=600.0)
NOTIFICATIONS_DELIVERY_LEASE_SECONDS = env.int("NOTIFICATIONS_DELIVERY_LEASE_SECONDS", default=120)
NOTIFICATIONS_TICK_SECONDS = env.float("NOTIFICATIONS_TICK_SECONDS", default=5.0)
# A queue of their own for notification tasks ("" = the default queue); its workers need -Q with it.
NOTIFICATIONS_QUEUE = env.str("NOTIFICATIONS_QUEUE", default="")
NOTIFICATIONS_ALLOW_LOOPBACK = env.bool("NOTIFICATIONS_ALLOW_LOOPBACK", default=False)
NOTIFICATIONS_ALLOW_LINK_LOCAL = env.bool("NOTIFICATIONS_ALLOW_LINK_LOCAL", default=False)
NOTIFICATIONS_PAGERDUTY_EVENTS_URL = env.str("NOTIFICATIONS_PAGERDUTY_EVENTS_URL",
                                             default="https://events.pagerduty.com/v2/enqueue")

# SLOs: beat recomputes every SLO (SLI, budget, burn rates, burn alerts) every SLO_RECOMPUTE_SECONDS;
# a history point at most every SLO_SNAPSHOT_SECONDS. The error-budget policy maps burn-alert rows to
# incident severities. Status: warning / critical below these fractions of budget left.
SLO_RECOMPUTE_SECONDS = env.float("SLO_RECOMPUTE_SECONDS", default=15.0)
SLO_SNAPSHOT_SECONDS = env.int("SLO_SNAPSHOT_SECONDS", default=300)
SLO_SNAPSHOT_RETENTION_DAYS = env.int("SLO_SNAPSHOT_RETENTION_DAYS", default=100)
SLO_SEVERITY_POLICY = env.str(
    "SLO_SEVERITY_POLICY", default="page_fast=critical,page_slow=high,ticket_fast=medium,ticket_slow=low")
SLO_WARNING_REMAINING = env.float("SLO_WARNING_REMAINING", default=0.25)
SLO_CRITICAL_REMAINING = env.float("SLO_CRITICAL_REMAINING", default=0.10)
SLO_ALERT_RECOVERY_HOLD_SECONDS = env.int("SLO_ALERT_RECOVERY_HOLD_SECONDS", default=60)
SLO_BATCH_QUERIES = env.bool("SLO_BATCH_QUERIES", default=True)

# Investigation: a run per trigger (opened, reopened, services joined, manual). Each collector has its
# own deadline, so a hanging source ends as "timed out" evidence and the run still completes.
INVESTIGATION_COLLECTOR_TIMEOUT_SECONDS = env.float("INVESTIGATION_COLLECTOR_TIMEOUT_SECONDS", default=4.0)
INVESTIGATION_JOIN_DEBOUNCE_SECONDS = env.int("INVESTIGATION_JOIN_DEBOUNCE_SECONDS", default=20)
INVESTIGATION_MAX_ATTEMPTS = env.int("INVESTIGATION_MAX_ATTEMPTS", default=3)
# The incident window starts this long before the first pending sighting; the baseline is as long.
INVESTIGATION_WINDOW_LEAD_SECONDS = env.int("INVESTIGATION_WINDOW_LEAD_SECONDS", default=180)
INVESTIGATION_MAX_POINTS = env.int("INVESTIGATION_MAX_POINTS", default=240)  # per series, baseline + window
INVESTIGATION_MIN_STEP_SECONDS = env.int("INVESTIGATION_MIN_STEP_SECONDS", default=1)
INVESTIGATION_RATE_WINDOW = env.str("INVESTIGATION_RATE_WINDOW", default="30s")  # $rate in the queries below
# Per-service PromQL; $selector is the catalog's prometheus.selector (investigation/scope.py).
INVESTIGATION_QUERY_REQUEST_RATE = env.str(
    "INVESTIGATION_QUERY_REQUEST_RATE", default="sum(rate(http_requests_total{$selector}[$rate]))")
INVESTIGATION_QUERY_ERROR_RATIO = env.str(
    "INVESTIGATION_QUERY_ERROR_RATIO",
    default='sum(rate(http_requests_total{$selector,code=~"5.."}[$rate])) / sum(rate(http_requests_total{$selector}[$rate]))')
INVESTIGATION_QUERY_LATENCY = env.str(
    "INVESTIGATION_QUERY_LATENCY",
    default="histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{$selector}[$rate])))")
INVESTIGATION_QUERY_AVAILABILITY = env.str("INVESTIGATION_QUERY_AVAILABILITY", default="min(up{$selector})")
# Failed requests over the incident window ($window = its length), for the impact.
INVESTIGATION_QUERY_FAILED_REQUESTS = env.str(
    "INVESTIGATION_QUERY_FAILED_REQUESTS", default='sum(increase(http_requests_total{$selector,code=~"5.."}[$window]))')
# Changes this long before the window are still collected; one this close before the onset is suspect.
INVESTIGATION_CHANGE_LOOKBACK_SECONDS = env.int("INVESTIGATION_CHANGE_LOOKBACK_SECONDS", default=3600)
INVESTIGATION_DEPLOY_SUSPECT_SECONDS = env.int("INVESTIGATION_DEPLOY_SUSPECT_SECONDS", default=1800)
INVESTIGATION_MAX_HYPOTHESES = env.int("INVESTIGATION_MAX_HYPOTHESES", default=5)

CELERY_BEAT_SCHEDULE = {
    # Proves beat → broker → worker is alive; /readyz shows the heartbeat's age.
    "heartbeat": {"task": "reliability_studio.tasks.heartbeat", "schedule": 15.0},
    "detection-dispatch": {"task": "detection.dispatch_due_rules", "schedule": DETECTION_DISPATCH_SECONDS},
    "detection-auto-resolve": {"task": "detection.auto_resolve_incidents", "schedule": 5.0},
}
CELERY_BEAT_SCHEDULE["slo-recompute"] = {"task": "slos.recompute", "schedule": SLO_RECOMPUTE_SECONDS}
CELERY_BEAT_SCHEDULE["remediation-verify"] = {"task": "remediation.verify", "schedule": REMEDIATION_VERIFY_INTERVAL_SECONDS}
# Escalation levels that are due, retries with their backoff, deliveries whose task was lost.
CELERY_BEAT_SCHEDULE["notifications-escalate"] = {"task": "notifications.tick", "schedule": NOTIFICATIONS_TICK_SECONDS}

# The demo workload's control API (chaos commands talk to it the way they would to any real system).
# The chaos API, the fire drill and the `chaos` / `firedrill` commands exist only with DEMO_ENABLED
# (off in production unless set; on in development and test).
DEMO_ENABLED = env.bool("DEMO_ENABLED", default=False)
DEMO_CONTROL_URL = env.str("DEMO_CONTROL_URL", default="http://127.0.0.1:9100")

LOG_FORMAT = env.str("LOG_FORMAT", default="json")
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
        "text": {"format": "%(asctime)s %(levelname)-7s %(name)s %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "daphne": {"level": "WARNING"},
        "axes": {"level": "WARNING"},  # lockouts (WARNING) stay; every sign-in's "deleted 0 attempts" goes
    },
}

# /metrics: empty = open (as Prometheus scrapes by default); set it and give Prometheus the same
# value as a bearer credential (`authorization: {credentials: ...}`).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# Outgoing calls to user-configured URLs (webhooks, data sources) refuse link-local and cloud
# metadata addresses (reliability_studio/outbound.py) unless a host, IP or CIDR is listed here.
OUTBOUND_ALLOWED_HOSTS = env.list("OUTBOUND_ALLOWED_HOSTS", default=[])
OUTBOUND_ALLOW_LINK_LOCAL = env.bool("OUTBOUND_ALLOW_LINK_LOCAL", default=False)
