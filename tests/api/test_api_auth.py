"""Token and session authentication, tokens stored hashed with an optional expiry, the command
that issues them, and the migration that hashed the plain-text tokens of before."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from webapp.api import tokens

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


def client_with(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def test_a_token_is_stored_only_as_a_hash(user):
    token = tokens.issue(user)
    (row,) = AuthToken.objects.filter(user=user)
    assert token not in row.digest and token != row.token_key
    with connection.cursor() as cursor:  # nowhere in the table, in any column
        cursor.execute(f"SELECT * FROM {AuthToken._meta.db_table}")
        assert not any(token in str(value) for record in cursor.fetchall() for value in record)
    assert client_with(token).get("/api/v1/images/").status_code == 200


def test_an_expired_token_is_refused(user):
    token = tokens.issue(user, days=30)
    assert client_with(token).get("/api/v1/images/").status_code == 200
    AuthToken.objects.filter(user=user).update(expiry=timezone.now() - timedelta(seconds=1))
    assert client_with(token).get("/api/v1/images/").status_code == 401


def test_a_token_that_is_not_utf8_is_401_not_500(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token caf\xe9-\xff")
    assert client.get("/api/v1/images/").status_code == 401


def test_the_command_prints_a_new_working_token_each_time_and_rotate_revokes_the_others(user, capsys):
    call_command("api_token", "ada")
    first = capsys.readouterr().out.strip()
    call_command("api_token", "ada")
    second = capsys.readouterr().out.strip()
    assert first != second and len(first) == len(second) == 64
    assert all(client_with(t).get("/api/v1/images/").status_code == 200 for t in (first, second))
    call_command("api_token", "ada", "--rotate")
    rotated = capsys.readouterr().out.strip()
    assert client_with(rotated).get("/api/v1/images/").status_code == 200
    assert all(client_with(t).get("/api/v1/images/").status_code == 401 for t in (first, second))


def test_the_commands_help_says_each_call_makes_a_new_token():
    from webapp.management.commands.api_token import Command

    assert "each call makes a new one" in Command.help


def test_the_command_makes_a_token_that_expires_when_asked(user, capsys):
    call_command("api_token", "ada", "--days", "7")
    (row,) = AuthToken.objects.filter(user=user)
    assert timedelta(days=6) < row.expiry - timezone.now() <= timedelta(days=7)


def test_a_person_holds_a_limited_number_of_tokens(user, settings):
    settings.API_TOKENS_PER_PERSON = 2
    tokens.issue(user), tokens.issue(user)
    with pytest.raises(tokens.TooManyTokens):
        tokens.issue(user)


@pytest.mark.django_db(transaction=True)
def test_the_migration_hashes_the_plain_text_tokens_of_before_and_they_keep_working(django_user_model):
    from django.db.migrations.executor import MigrationExecutor

    person = django_user_model.objects.create_user("legacy")
    old_key = "0123456789abcdef0123456789abcdef01234567"  # a DRF token: 40 hex digits
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, created timestamp NOT NULL, "
                       "user_id integer NOT NULL)")
        cursor.execute("INSERT INTO authtoken_token (key, created, user_id) VALUES (%s, %s, %s)",
                       [old_key, timezone.now(), person.pk])
    try:
        executor = MigrationExecutor(connection)
        executor.migrate([("api", "0001_initial")])
        executor = MigrationExecutor(connection)
        executor.migrate([("api", "0002_hashed_tokens")])
        with connection.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM authtoken_token")
            assert cursor.fetchone()[0] == 0  # the plain text is gone
        assert client_with(old_key).get("/api/v1/images/").status_code == 200
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE authtoken_token")


def test_the_command_refuses_an_unknown_person():
    from django.core.management import CommandError

    with pytest.raises(CommandError):
        call_command("api_token", "nobody")


def test_throttling_answers_429_past_the_rate(api, monkeypatch):
    from webapp.api.throttling import PersonRateThrottle

    monkeypatch.setattr(PersonRateThrottle, "THROTTLE_RATES", {"person": "3/minute"})
    codes = [api.get("/api/v1/images/").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
