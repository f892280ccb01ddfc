"""The smaller holes: /metrics with a non-ASCII bearer token, a Content-Security-Policy on every
page, and login and sign-up bodies refused above a small size before they are parsed. (The API
docs behind a login: tests/api/test_api_schema.py; a failed job's plain message:
tests/webapp/test_task.py; Redis's password in compose: tests/deploy/test_compose_file.py.)"""

from __future__ import annotations

import pytest
from django.test import Client

from webapp.models import StyleImage

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("token", ["caf\xe9", "\xff\xfe", "tok\u00e8n with spaces"])
def test_metrics_with_a_non_ascii_bearer_token_is_401_not_500(client, settings, token):
    settings.METRICS_TOKEN = "the-real-token"
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 401


def test_metrics_with_a_non_ascii_configured_token_still_works(client, settings):
    settings.METRICS_TOKEN = "caf\xe9-token"
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer caf\xe9-token").status_code == 200
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer cafe-token").status_code == 401


@pytest.mark.parametrize("url", ["/accounts/login/", "/accounts/signup/", "/health/", "/admin/login/",
                                 "/api/v1/images/", "/no-such-page/"])
def test_every_response_carries_a_content_security_policy_of_self(client, url):
    policy = client.get(url)["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "unsafe-inline" not in policy


def test_a_logged_in_page_carries_it_too(client, user):
    client.force_login(user)
    response = client.get("/new/")
    assert response.status_code == 200 and "default-src 'self'" in response["Content-Security-Policy"]


@pytest.mark.parametrize("url", ["/accounts/login/", "/accounts/signup/", "/admin/login/"])
def test_a_large_multipart_body_to_login_or_sign_up_is_413_before_it_is_parsed(url, settings):
    big = b"x" * (settings.AUTH_FORM_MAX_BYTES + 1)
    body = (b"--B\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nada\r\n"
            b"--B\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.png\"\r\n\r\n" + big + b"\r\n--B--\r\n")
    response = Client(enforce_csrf_checks=True).post(url, body, content_type="multipart/form-data; boundary=B")
    assert response.status_code == 413 and "login or sign-up" in response.content.decode()
    assert StyleImage.objects.count() == 0


def test_an_ordinary_login_form_is_well_under_the_limit(client, user, settings):
    user.set_password("a long and unusual passphrase")
    user.save()
    response = client.post("/accounts/login/", {"username": user.username, "password": "a long and unusual passphrase"})
    assert response.status_code == 302
