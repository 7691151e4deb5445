"""Shared pieces of the fault tests: bounded waits, and child processes stopped whatever happens."""
from __future__ import annotations

import threading
import time

import pytest


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2):
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@pytest.fixture
def cleanup():
    """Register stop callables; at teardown they all run (at once: each process's graceful stop
    takes seconds on a busy machine, and they do not depend on each other), even when the test
    failed. The first error is raised after every stop has run."""
    stops: list = []
    yield stops.append
    errors: list[BaseException] = []

    def run(stop):
        try:
            stop()
        except Exception as exc:  # stop every process even when one stop fails
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(stop,)) for stop in stops]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    if errors:
        raise errors[0]
