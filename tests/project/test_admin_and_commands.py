import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from incidents import services
from incidents.models import Service, Severity
from reliability_studio.access import Role, role_of

pytestmark = pytest.mark.django_db


def test_admin_pages_render_with_readonly_timeline(client, admin_user):
    admin_user.is_staff = True
    admin_user.save()
    client.force_login(admin_user)
    incident = services.create_incident(title="x", severity=Severity.LOW)
    for url in ["/admin/", "/admin/incidents/incident/", f"/admin/incidents/incident/{incident.pk}/change/",
                "/admin/incidents/service/", "/admin/incidents/task/", "/admin/incidents/incident/?q=x&status__exact=open"]:
        assert client.get(url).status_code == 200, url


def test_create_admin_generates_a_password_once(capsys):
    call_command("create_admin", "--username", "demo", "--generate-password")
    out = capsys.readouterr().out
    password = out.rsplit(": ", 1)[1].strip()
    user = get_user_model().objects.get(username="demo")
    assert user.check_password(password) and role_of(user) == Role.ADMIN
    call_command("create_admin", "--username", "demo", "--generate-password", "--if-missing")
    assert "already exists" in capsys.readouterr().out
    user.refresh_from_db()
    assert user.check_password(password)


def test_create_admin_refuses_weak_or_missing_password(monkeypatch):
    monkeypatch.setenv("RS_ADMIN_PASSWORD", "admin")
    with pytest.raises(CommandError, match="password refused"):
        call_command("create_admin", "--username", "x", "--no-input")
    monkeypatch.delenv("RS_ADMIN_PASSWORD")
    with pytest.raises(CommandError, match="no password"):
        call_command("create_admin", "--username", "x", "--no-input")
    assert not get_user_model().objects.filter(username="x").exists()


def test_load_catalog_builds_the_graph_and_refuses_bad_files(tmp_path):
    call_command("load_catalog", "demo/catalog.yaml")
    assert set(Service.objects.get(slug="frontend").depends_on.values_list("slug", flat=True)) == {"catalog", "checkout"}
    bad = tmp_path / "bad.yaml"
    bad.write_text("services:\n  - slug: orphan\n    depends_on: [ghost]\n")
    with pytest.raises(CommandError, match="unknown service"):
        call_command("load_catalog", str(bad))
    assert not Service.objects.filter(slug="orphan").exists()
