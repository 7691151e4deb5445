"""Give a user one Reliability Studio role: manage.py set_role alice responder"""
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from reliability_studio.access import Role, ensure_role_groups, grant_role


class Command(BaseCommand):
    help = "Set a user's role (viewer, responder or admin)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("role", choices=["viewer", "responder", "admin"])

    def handle(self, *args, username, role, **_):
        ensure_role_groups()
        try:
            user = get_user_model().objects.get(username=username)
        except get_user_model().DoesNotExist:
            raise CommandError(f"no user named {username!r}") from None
        grant_role(user, Role.from_name(role))
        self.stdout.write(f"{username} is now {role}")
