"""Create an API token for a user and print its key once: manage.py create_api_token grafana --name plugin"""
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from reliability_studio.models import ApiToken


class Command(BaseCommand):
    help = "Create an API token for a user; the key is printed once (only its hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="what the token is for (shown in the admin)")

    def handle(self, *args, username, name, **_):
        if len(name) > ApiToken._meta.get_field("name").max_length:
            raise CommandError("--name is longer than 100 characters")
        if "\x00" in name:
            raise CommandError("--name must not contain NUL characters")
        try:
            user = get_user_model().objects.get(username=username)
        except get_user_model().DoesNotExist:
            raise CommandError(f"no user named {username!r}") from None
        if not user.is_active:
            raise CommandError(f"{username} is inactive; a token of theirs would be refused")
        token, key = ApiToken.issue(user=user, name=name)
        self.stderr.write(f"token {token.prefix}… for {username} (shown once; only its hash is stored):")
        self.stdout.write(key)
