"""The person's token page: shows, creates and rotates the API token."""

import pytest
from rest_framework.authtoken.models import Token

pytestmark = pytest.mark.django_db


def test_the_page_needs_a_login(client):
    response = client.get("/api/token/")
    assert response.status_code == 302 and "login" in response["Location"]


def test_it_creates_then_rotates_the_token(client, user):
    client.force_login(user)
    assert b"no token yet" in client.get("/api/token/").content
    client.post("/api/token/")
    first = Token.objects.get(user=user).key
    assert first.encode() in client.get("/api/token/").content
    client.post("/api/token/")
    assert Token.objects.get(user=user).key != first


def test_every_page_links_to_the_token_page(client, django_user_model):
    user = django_user_model.objects.create_user("linker", password="pw-for-the-link-test")
    client.force_login(user)
    page = client.get("/")
    assert page.status_code == 200
    assert b'href="/api/token/"' in page.content
