"""`manage.py api_token <username> [--days N] [--rotate]`: make a new API token for a person and
print it. Tokens are stored hashed (webapp/api/tokens.py), so an existing one cannot be shown
again: every call makes a new one (the person's others keep working until revoked)."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from webapp.api import tokens


class Command(BaseCommand):
    help = ("Make a new REST API token for a person and print it (the only time it is shown: tokens are stored "
            "hashed, so each call makes a new one). --rotate revokes the person's other tokens first; --days "
            "makes it expire.")

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--rotate", action="store_true", help="Revoke the person's existing tokens first.")
        parser.add_argument("--days", type=int, default=0, metavar="N",
                            help="Expire the token after N days (default: never, until revoked).")

    def handle(self, username, rotate=False, days=0, **options):
        if days < 0:
            raise CommandError("--days must be 0 (never) or more")
        try:
            user = get_user_model().objects.get(username=username)
        except get_user_model().DoesNotExist:
            raise CommandError(f"no user named {username!r}")
        with transaction.atomic():
            if rotate:
                tokens.tokens_of(user).delete()
            try:
                token = tokens.issue(user, days)
            except tokens.TooManyTokens as exc:
                raise CommandError(f"{exc} (`api_token {username} --rotate` revokes them all)")
        self.stdout.write(token)
