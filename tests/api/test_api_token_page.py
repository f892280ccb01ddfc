"""The person's token page: lists the tokens, makes one (shown once), revokes one."""

import re

import pytest
from knox.models import AuthToken
from rest_framework.test import APIClient

from webapp.api import tokens

pytestmark = pytest.mark.django_db


def test_the_page_needs_a_login(client):
    response = client.get("/api/token/")
    assert response.status_code == 302 and "login" in response["Location"]


def works(token: str) -> bool:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client.get("/api/v1/images/").status_code == 200


def test_a_new_token_is_shown_once_and_never_again(client, user):
    client.force_login(user)
    assert b"no token yet" in client.get("/api/token/").content
    page = client.post("/api/token/", {"expires_in_days": "0"}).content.decode()
    token = re.search(r'value="([0-9a-f]{64})"', page).group(1)
    assert works(token) and "shown only this once" in page
    assert token not in client.get("/api/token/").content.decode()
    assert AuthToken.objects.get(user=user).expiry is None


def test_a_token_can_be_made_to_expire(client, user):
    client.force_login(user)
    client.post("/api/token/", {"expires_in_days": "30"})
    assert AuthToken.objects.get(user=user).expiry is not None
    assert client.post("/api/token/", {"expires_in_days": "12345"}).status_code == 400


def test_a_token_is_revoked_from_the_page_and_stops_working(client, user, other):
    client.force_login(user)
    token, kept = tokens.issue(user), tokens.issue(user)
    digest = next(row.digest for row in AuthToken.objects.filter(user=user) if token.startswith(row.token_key))
    assert digest.encode() in client.get("/api/token/").content  # the revoke button names the hash, not the token
    client.post("/api/token/", {"revoke": digest})
    assert not works(token) and works(kept)


def test_nobody_revokes_another_persons_token(client, user, other):
    theirs = tokens.issue(other)
    client.force_login(user)
    client.post("/api/token/", {"revoke": AuthToken.objects.get(user=other).digest})
    assert works(theirs)


def test_every_page_links_to_the_token_page(client, django_user_model):
    user = django_user_model.objects.create_user("linker", password="pw-for-the-link-test")
    client.force_login(user)
    page = client.get("/")
    assert page.status_code == 200
    assert b'href="/api/token/"' in page.content
