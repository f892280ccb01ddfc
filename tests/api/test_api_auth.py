"""Token and session authentication, and the command that issues tokens."""

import pytest
from django.core.management import call_command
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def test_a_request_without_a_token_gets_401():
    response = APIClient().get("/api/v1/jobs/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Token")


def test_a_request_with_a_bad_token_gets_401(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert client.get("/api/v1/images/").status_code == 401


def test_a_valid_token_is_accepted(api):
    assert api.get("/api/v1/images/").status_code == 200


def test_a_browser_session_is_accepted(client, user):
    client.force_login(user)
    assert client.get("/api/v1/batches/").status_code == 200


def test_the_command_prints_the_same_token_until_it_is_rotated(user, capsys):
    call_command("api_token", "ada")
    first = capsys.readouterr().out.strip()
    call_command("api_token", "ada")
    assert capsys.readouterr().out.strip() == first
    call_command("api_token", "ada", "--rotate")
    rotated = capsys.readouterr().out.strip()
    assert rotated != first and Token.objects.get(user=user).key == rotated


def test_the_command_refuses_an_unknown_person():
    from django.core.management import CommandError

    with pytest.raises(CommandError):
        call_command("api_token", "nobody")


def test_throttling_answers_429_past_the_rate(api, monkeypatch):
    from webapp.api.throttling import PersonRateThrottle

    monkeypatch.setattr(PersonRateThrottle, "THROTTLE_RATES", {"person": "3/minute"})
    codes = [api.get("/api/v1/images/").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
