"""In CI a skipped test is a failed test.

Tests that need a binary (prometheus, prometheus-alertmanager, redis-server, initdb, node, ...)
skip on a developer's machine that lacks it, and say how to install it. In CI (`CI` set to
anything but "", "0", "false" or "no"; `.ci/run` sets it) every one of them must run, so a skip
there — from `pytest.skip`, a `skipif` mark, `pytest.importorskip`, at collection or in a test —
is reported as a failure with the skip's reason. xfail is untouched.

The hooks are installed by tests/conftest.py (which imports them); this module imports nothing
from the project, so tests/project/test_ci_skips.py can load it alone as a plugin (`-p tests.ci`).
"""
from __future__ import annotations

import os
import shutil

import pytest

CI_FALSE = {"", "0", "false", "no"}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in CI_FALSE


def require_binary(name: str, hint: str = "") -> str:
    """The path of executable `name`, or skip the test (a failure in CI) saying how to get it."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed" + (f": {hint}" if hint else ""))
    return path


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # (file, line, "Skipped: reason")
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _fail_skip(report) -> None:
    if report.skipped and not hasattr(report, "wasxfail") and in_ci():
        report.outcome = "failed"
        report.longrepr = (f"skipped in CI (CI={os.environ.get('CI')!r}): {_skip_reason(report)} — "
                           "CI runs every test: install what it needs (make system-deps-test)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_skip(outcome.get_result())
