"""Login rate limiting (django-axes) through the real middleware and login views: the sign-in page
and the admin's lock a username from an address after AXES_FAILURE_LIMIT failures; API tokens are
not affected."""
from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client

from reliability_studio.access import Role

PASSWORD = "correct-horse-battery-staple"  # tests/factories.py
LOGIN = "/accounts/login/"
ADMIN_LOGIN = "/admin/login/"

pytestmark = pytest.mark.django_db


def attempt(client: Client, url: str, username: str, password: str, address: str = "127.0.0.1"):
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR=address)


def fail(client: Client, url: str, username: str, times: int, address: str = "127.0.0.1"):
    return [attempt(client, url, username, "wrong-password", address).status_code for _ in range(times)]


def test_the_limit_comes_from_the_settings_with_a_sane_default():
    assert settings.AXES_ENABLED is True
    assert 3 <= settings.AXES_FAILURE_LIMIT <= 10
    assert settings.AXES_LOCKOUT_PARAMETERS == [["username", "ip_address"]]
    assert settings.AXES_COOLOFF_TIME.total_seconds() > 0  # locks expire by themselves
    assert settings.AUTHENTICATION_BACKENDS[0] == "axes.backends.AxesStandaloneBackend"


def test_sign_in_locks_out_after_the_limit_with_a_clear_429_page(make_user):
    user = make_user(Role.VIEWER)
    client = Client()
    limit = settings.AXES_FAILURE_LIMIT
    assert fail(client, LOGIN, user.username, limit - 1) == [200] * (limit - 1)  # the form again, with its error
    locked = attempt(client, LOGIN, user.username, "wrong-password")
    assert locked.status_code == 429
    assert "Too many sign-in attempts" in locked.content.decode()
    # Now even the right password is refused, and no session is created.
    again = attempt(client, LOGIN, user.username, PASSWORD)
    assert again.status_code == 429 and "_auth_user_id" not in client.session
    # The lock is for this username from this address only.
    assert attempt(Client(), LOGIN, user.username, PASSWORD, address="10.0.0.7").status_code == 302
    other = make_user(Role.VIEWER)
    assert attempt(Client(), LOGIN, other.username, PASSWORD).status_code == 302


def test_a_success_before_the_limit_signs_in_and_resets_the_count(make_user):
    user = make_user(Role.VIEWER)
    limit = settings.AXES_FAILURE_LIMIT
    client = Client()
    fail(client, LOGIN, user.username, limit - 1)
    ok = attempt(client, LOGIN, user.username, PASSWORD)
    assert ok.status_code == 302 and client.session["_auth_user_id"] == str(user.pk)
    # The count started again: another limit − 1 failures still do not lock.
    assert fail(Client(), LOGIN, user.username, limit - 1) == [200] * (limit - 1)
    assert attempt(Client(), LOGIN, user.username, PASSWORD).status_code == 302


def test_the_admin_login_locks_out_too(make_user):
    admin = make_user(Role.ADMIN)
    client = Client()
    limit = settings.AXES_FAILURE_LIMIT
    assert fail(client, ADMIN_LOGIN, admin.username, limit)[-1] == 429
    assert attempt(client, ADMIN_LOGIN, admin.username, PASSWORD).status_code == 429
    assert client.get("/admin/").status_code == 302  # still not signed in


def issue_token(user) -> str:
    from reliability_studio.models import ApiToken

    return ApiToken.issue(user=user, name="lockout-test")[1]


def test_api_tokens_are_not_affected_by_a_locked_login(make_user):
    user = make_user(Role.VIEWER)
    client = Client()
    assert fail(client, LOGIN, user.username, settings.AXES_FAILURE_LIMIT)[-1] == 429
    api = Client(HTTP_AUTHORIZATION=f"Token {issue_token(user)}")
    assert api.get("/api/v1/incidents/").status_code == 200


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_lockout_under_daphne(make_user):
    # The ASGI handler runs axes' middleware on its async path: the product as served must lock too.
    import requests
    from django.db import connection

    from tests.servers import Daphne, login, server_env

    user = make_user(Role.VIEWER)
    server = Daphne(server_env(connection.settings_dict["NAME"]))
    try:
        session = requests.Session()
        session.get(server.url + LOGIN, timeout=10)

        def post(password: str) -> requests.Response:
            return session.post(server.url + LOGIN, allow_redirects=False, timeout=10,
                                data={"username": user.username, "password": password,
                                      "csrfmiddlewaretoken": session.cookies["csrftoken"]},
                                headers={"Referer": server.url + LOGIN})

        codes = [post("wrong-password").status_code for _ in range(settings.AXES_FAILURE_LIMIT)]
        assert codes == [200] * (settings.AXES_FAILURE_LIMIT - 1) + [429]
        locked = post(PASSWORD)
        assert locked.status_code == 429 and "Too many sign-in attempts" in locked.text
        other = make_user(Role.VIEWER)
        assert login(server.url, other.username, PASSWORD).get(server.url + "/", timeout=10).status_code == 200
    finally:
        server.stop()
