"""API tokens are stored hashed (like alert-source tokens): the key is shown once and never kept;
lookup is one query; a wrong key, an inactive or a deleted user get a JSON 401."""
import hashlib
from importlib import import_module

import pytest
from django.apps import apps as global_apps
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from reliability_studio.access import Role
from reliability_studio.models import ApiToken

pytestmark = pytest.mark.django_db


def client_with(key: str, keyword: str = "Token") -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"{keyword} {key}")
    return client


def all_text_in_token_table() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM reliability_studio_apitoken")
        return " ".join(str(value) for row in cursor.fetchall() for value in row)


def test_the_raw_key_is_never_stored(make_user):
    token, key = ApiToken.issue(user=make_user(Role.VIEWER), name="grafana")
    stored = all_text_in_token_table()
    assert key not in stored and key.removeprefix("rs_") not in stored
    assert token.digest == hashlib.sha256(key.encode()).hexdigest() and token.digest in stored
    assert key.startswith("rs_") and token.prefix == key[3:11]


def test_a_key_authenticates_as_its_user_with_their_role(make_user):
    _, key = ApiToken.issue(user=make_user(Role.VIEWER))
    assert client_with(key).get("/api/v1/incidents/").status_code == 200
    assert client_with(key, "Bearer").get("/api/v1/incidents/").status_code == 401  # DRF's scheme only
    refused = client_with(key).post("/api/v1/incidents/", {"title": "x", "severity": "low"}, format="json")
    assert refused.status_code == 403  # a viewer's token is a viewer


def test_authentication_is_one_query(make_user):
    _, key = ApiToken.issue(user=make_user(Role.VIEWER))
    from reliability_studio.access import ApiTokenAuthentication
    from rest_framework.test import APIRequestFactory

    request = APIRequestFactory().get("/api/v1/incidents/", HTTP_AUTHORIZATION=f"Token {key}")
    with CaptureQueriesContext(connection) as queries:
        user, token = ApiTokenAuthentication().authenticate(request)
        assert user.username and token.user_id == user.pk
    assert len(queries) == 1, [q["sql"] for q in queries]


@pytest.mark.parametrize("header", ["Token not-a-token", "Token rs_wrong", "Token a b", "Token "])
def test_a_wrong_key_is_a_json_401(make_user, header):
    ApiToken.issue(user=make_user(Role.ADMIN))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/v1/incidents/")
    assert response.status_code == 401
    assert response["Content-Type"].startswith("application/json") and response.json()["message"]


def test_an_inactive_user_is_refused(make_user):
    user = make_user(Role.ADMIN)
    _, key = ApiToken.issue(user=user)
    user.is_active = False
    user.save()
    response = client_with(key).get("/api/v1/incidents/")
    assert response.status_code == 401 and "inactive" in response.json()["message"]


def test_a_deleted_user_takes_their_tokens_along(make_user):
    user = make_user(Role.ADMIN)
    _, key = ApiToken.issue(user=user)
    user.delete()
    assert not ApiToken.objects.exists()
    assert client_with(key).get("/api/v1/incidents/").status_code == 401


def test_create_api_token_prints_the_key_once(make_user, capsys):
    user = make_user(Role.RESPONDER, username="ci-bot")
    call_command("create_api_token", "ci-bot", "--name", "ci")
    key = capsys.readouterr().out.strip()
    token = ApiToken.objects.get(user=user)
    assert token.name == "ci" and token.digest == hashlib.sha256(key.encode()).hexdigest()
    assert client_with(key).get("/api/v1/incidents/").status_code == 200


@pytest.mark.parametrize("args, message", [(["nobody"], "no user named 'nobody'"),
                                           (["ci-bot", "--name", "x" * 101], "longer than 100")])
def test_create_api_token_refuses_bad_input_and_writes_nothing(make_user, args, message):
    make_user(Role.RESPONDER, username="ci-bot")
    with pytest.raises(CommandError, match=message):
        call_command("create_api_token", *args)
    assert not ApiToken.objects.exists()


def test_the_admin_shows_a_new_key_once_and_stores_its_hash(make_user, client):
    admin = make_user(Role.ADMIN)
    owner = make_user(Role.VIEWER, username="grafana-plugin")
    client.force_login(admin)
    response = client.post("/admin/reliability_studio/apitoken/add/", {"user": owner.pk, "name": "plugin"}, follow=True)
    assert response.status_code == 200
    shown = [str(m) for m in response.context["messages"]]
    key = next(m.rsplit(": ", 1)[1] for m in shown if "shown once" in m)
    token = ApiToken.objects.get()
    assert token.user == owner and token.digest == hashlib.sha256(key.encode()).hexdigest()
    assert key not in all_text_in_token_table()
    assert client_with(key).get("/api/v1/incidents/").status_code == 200


def test_the_migration_hashes_existing_drf_tokens(make_user):
    """Clear-text rows of rest_framework.authtoken become hashed ApiTokens; the same key still works."""
    user = make_user(Role.RESPONDER)
    legacy_key = "0123456789abcdef0123456789abcdef01234567"
    with connection.cursor() as cursor:
        if "authtoken_token" not in connection.introspection.table_names():
            cursor.execute("CREATE TABLE authtoken_token (key varchar(40) primary key, "
                           "user_id integer not null, created timestamptz not null)")
        cursor.execute("INSERT INTO authtoken_token (key, user_id, created) VALUES (%s, %s, now())",
                       [legacy_key, user.pk])
    migration = import_module("reliability_studio.migrations.0002_hash_drf_tokens")
    with connection.schema_editor() as editor:
        migration.hash_legacy_tokens(global_apps, editor)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM authtoken_token")
        assert cursor.fetchone()[0] == 0  # the clear text is gone
    assert legacy_key not in all_text_in_token_table()
    assert ApiToken.objects.get().user == user
    assert client_with(legacy_key).get("/api/v1/incidents/").status_code == 200
