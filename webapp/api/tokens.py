"""API tokens, stored hashed (django-rest-knox): the database keeps a SHA-512 digest and the
first 15 characters (to find the row), never the token, so a leaked backup or an admin
screen gives nobody a way in. A token is shown once, when it is made; it may expire; its
owner revokes it on /api/token/, staff in the admin.

    issue(person, days=None) -> the token (64 hex digits), shown to its maker only now
    revoke(person, digest)   -> whether one of theirs was deleted

A person may hold API_TOKENS_PER_PERSON at once. Sent as `Authorization: Token <token>`,
as DRF's own tokens were (tokens made before the change keep working: the migration
api/0002 hashed them in place of their plain text).
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from knox.auth import TokenAuthentication
from knox.models import AuthToken
from rest_framework.exceptions import AuthenticationFailed

EXPIRY_CHOICES = ((0, "never"), (30, "in 30 days"), (90, "in 90 days"), (365, "in a year"))


class TooManyTokens(Exception):
    """The person already holds API_TOKENS_PER_PERSON tokens."""


class HashedTokenAuthentication(TokenAuthentication):
    """knox's, except that a token that is not UTF-8 (the header is read as Latin-1 bytes) is a
    401 like any other bad token, not a UnicodeDecodeError (500)."""

    def authenticate_credentials(self, token: bytes):
        try:
            token.decode("utf-8")
        except UnicodeDecodeError:
            raise AuthenticationFailed("Invalid token.") from None
        return super().authenticate_credentials(token)


def issue(person, days: int | None = None) -> str:
    """A new token of `person`'s, valid for `days` (None or 0: until revoked); the only time
    its text exists outside the client that receives it."""
    if AuthToken.objects.filter(user=person).count() >= settings.API_TOKENS_PER_PERSON:
        raise TooManyTokens(f"You have {settings.API_TOKENS_PER_PERSON} tokens, the most allowed; revoke one first.")
    _, token = AuthToken.objects.create(person, expiry=timedelta(days=days) if days else None)
    return token


def revoke(person, digest: str) -> bool:
    return AuthToken.objects.filter(user=person, digest=digest).delete()[0] > 0


def tokens_of(person):
    return AuthToken.objects.filter(user=person).order_by("-created")


class HashedTokenScheme(OpenApiAuthenticationExtension):
    """How the OpenAPI schema describes HashedTokenAuthentication (drf-spectacular's knox
    extension matches knox's class only, not a subclass)."""

    target_class = "webapp.api.tokens.HashedTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "Authorization",
                "description": 'A token from /api/token/, sent as "Token <token>".'}
