"""Admin actions that hand out secrets check permissions: rotate_token needs the change permission
on alert sources (the admin role), not just access to the Django admin."""
import pytest
from django.contrib.auth.models import Permission

from detection.models import AlertSource, AlertSourceKind
from reliability_studio.access import Role

pytestmark = pytest.mark.django_db
CHANGELIST = "/admin/detection/alertsource/"


@pytest.fixture
def source():
    source = AlertSource(name="am", kind=AlertSourceKind.ALERTMANAGER)
    source.set_new_token()
    source.save()
    return source


def rotate(client, source):
    return client.post(CHANGELIST, {"action": "rotate_token", "_selected_action": [source.pk]}, follow=True)


def test_staff_without_the_change_permission_cannot_rotate(client, make_user, source):
    staff = make_user(None)
    staff.is_staff = True
    staff.save()
    staff.user_permissions.add(Permission.objects.get(codename="view_alertsource"))
    client.force_login(staff)
    before = (source.token_hash, source.token_hint)
    response = rotate(client, source)
    assert response.status_code == 200  # Django answers "no action selected" rather than running it
    assert "rotate_token" not in response.content.decode()  # not even offered
    assert not any("shown once" in str(m) for m in response.context["messages"])
    source.refresh_from_db()
    assert (source.token_hash, source.token_hint) == before


def test_an_admin_rotates_and_sees_the_new_token_once(client, make_user, source):
    client.force_login(make_user(Role.ADMIN))
    before = source.token_hash
    response = rotate(client, source)
    shown = [str(m) for m in response.context["messages"] if "shown once" in str(m)]
    source.refresh_from_db()
    assert len(shown) == 1 and source.token_hash != before
