"""Development tools: start the stack's real processes (daphne, Celery, Prometheus, the demo shop,
local stand-ins for notification destinations) on loopback ports.

The tests and the benchmarks in bench/ both use these; the running product never imports them.
Like the rest of the project package, nothing here imports an app (tests/project/test_imports.py).
"""
