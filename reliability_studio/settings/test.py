"""Test: pytest (pyproject.toml) and every process the tests start (tests/servers.py).

Never reads `.env` (a developer's local settings must not change test results). Tasks run inline
unless CELERY_TASK_ALWAYS_EAGER=false (tests that need a real worker start one on a queue of their
own); channel, cache and queue names start with rs-test so a running demo sharing the Redis is
untouched; a fixed test-only secret so the test process and its servers sign alike; the demo's
chaos API and fire drill on.
"""
from .common import *  # noqa: F403
from .common import REDIS_URL, env, redis_layers

DEBUG = False
SECRET_KEY = env.str("SECRET_KEY", default="test-only-secret-key-not-for-production-0123456789")
CHANNEL_PREFIX = env.str("CHANNEL_PREFIX", default="rs-test")
CHANNEL_LAYERS, CACHES = redis_layers(REDIS_URL, CHANNEL_PREFIX)
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=True)
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="rs-test")
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=False)
DEMO_ENABLED = env.bool("DEMO_ENABLED", default=True)
