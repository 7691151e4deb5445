"""Shared fixtures: users per role and API clients. Tests talk to the real Postgres and Redis.

In CI (`CI` set) a skipped test fails: see tests/ci.py, whose hooks are installed here.
"""
import pytest
from rest_framework.test import APIClient

from reliability_studio.access import Role, grant_role

from .ci import pytest_make_collect_report, pytest_runtest_makereport, require_binary  # noqa: F401  (hooks)
from .factories import UserFactory


@pytest.fixture
def make_user(db):
    def make(role: Role | None, username: str | None = None):
        user = UserFactory(**({"username": username} if username else {}))
        if role is not None and role != Role.NONE:
            grant_role(user, role)
        return user

    return make


@pytest.fixture
def viewer(make_user):
    return make_user(Role.VIEWER)


@pytest.fixture
def responder(make_user):
    return make_user(Role.RESPONDER)


@pytest.fixture
def admin_user(make_user):
    return make_user(Role.ADMIN)


@pytest.fixture
def api():
    """An API client; `api.as_user(user)` authenticates with a session-less force login."""

    client = APIClient()

    def as_user(user):
        client.force_authenticate(user=user)
        return client

    client.as_user = as_user
    return client
