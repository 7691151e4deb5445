"""Create (or reset) the first admin without any default password.

    manage.py create_admin --username alice --email alice@example.com   # prompts for the password
    RS_ADMIN_USERNAME=alice RS_ADMIN_PASSWORD=... manage.py create_admin --no-input
    manage.py create_admin --username demo --generate-password           # prints a generated one once
"""
import getpass
import os
import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from reliability_studio.access import Role, ensure_role_groups, grant_role


class Command(BaseCommand):
    help = "Create the first Reliability Studio admin (password prompted, from RS_ADMIN_PASSWORD, or generated)."

    def add_arguments(self, parser):
        parser.add_argument("--username", default=os.environ.get("RS_ADMIN_USERNAME"))
        parser.add_argument("--email", default=os.environ.get("RS_ADMIN_EMAIL", ""))
        parser.add_argument("--generate-password", action="store_true", help="generate a password and print it once")
        parser.add_argument("--if-missing", action="store_true", help="do nothing if the user already exists")
        parser.add_argument("--no-input", action="store_true", help="never prompt (use RS_ADMIN_PASSWORD)")

    def handle(self, *args, username=None, email="", generate_password=False, if_missing=False, no_input=False, **_):
        if not username:
            raise CommandError("no username: pass --username or set RS_ADMIN_USERNAME")
        User = get_user_model()
        ensure_role_groups()
        if if_missing and User.objects.filter(username=username).exists():
            self.stdout.write(f"admin {username!r} already exists; password unchanged")
            return
        if generate_password:
            password = secrets.token_urlsafe(18)
        else:
            password = os.environ.get("RS_ADMIN_PASSWORD")
            if not password:
                if no_input:
                    raise CommandError("no password: set RS_ADMIN_PASSWORD or use --generate-password")
                password = getpass.getpass(f"Password for {username}: ")
        user = User(username=username, email=email)
        try:
            validate_password(password, user)
        except ValidationError as exc:
            raise CommandError("password refused: " + " ".join(exc.messages)) from None
        user, _created = User.objects.get_or_create(username=username, defaults={"email": email})
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        grant_role(user, Role.ADMIN)
        if generate_password:
            self.stdout.write(self.style.WARNING(f"admin user {username!r} password (shown once): {password}"))
        else:
            self.stdout.write(self.style.SUCCESS(f"admin user {username!r} is ready"))
