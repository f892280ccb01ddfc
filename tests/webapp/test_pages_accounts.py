"""Signing up, logging in and out; everything else needs a login."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

pytestmark = pytest.mark.django_db

PASSWORD = "a long and unusual passphrase"


@pytest.fixture(autouse=True)
def quick_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def user(user):
    """Ada, with a password to log in with."""
    user.set_password(PASSWORD)
    user.save()
    return user


def test_signing_up_logs_the_person_in_and_opens_the_new_job_page(client):
    response = client.post("/accounts/signup/", {"username": "grace", "password1": PASSWORD, "password2": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/new/"
    assert get_user_model().objects.filter(username="grace").exists()
    assert client.get("/new/").status_code == 200


def test_a_weak_or_mistyped_password_is_shown_next_to_the_field(client):
    response = client.post("/accounts/signup/", {"username": "grace", "password1": "abc", "password2": "abd"})
    html = response.content.decode()
    assert response.status_code == 200 and 'id="id_password2_error"' in html
    assert "didn’t match" in html or "didn't match" in html
    assert not get_user_model().objects.exists()


def test_logging_in_opens_my_jobs_and_honours_next(client, user):
    response = client.post("/accounts/login/", {"username": "ada", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/"
    client.logout()
    response = client.post("/accounts/login/?next=/new/", {"username": "ada", "password": PASSWORD, "next": "/new/"})
    assert response["Location"] == "/new/"


def test_a_wrong_password_says_so(client, user):
    response = client.post("/accounts/login/", {"username": "ada", "password": "wrong"})
    assert response.status_code == 200 and "Please enter a correct username and password" in response.content.decode()


def test_logging_out_takes_a_post_and_ends_the_session(client, user):
    client.force_login(user)
    assert client.get("/accounts/logout/").status_code == 405
    response = client.post("/accounts/logout/")
    assert response.status_code == 302 and response["Location"] == "/accounts/login/"
    assert client.get("/")["Location"].startswith("/accounts/login/")


def test_a_logged_in_person_is_not_shown_the_login_or_signup_forms(client, user):
    client.force_login(user)
    assert client.get("/accounts/login/")["Location"] == "/"
    assert client.get("/accounts/signup/")["Location"] == "/"


@pytest.mark.parametrize("url", ["/", "/new/", "/jobs/00000000-0000-0000-0000-000000000000/",
                                 "/jobs/00000000-0000-0000-0000-000000000000/status.json",
                                 "/images/00000000-0000-0000-0000-000000000000/"])
def test_every_page_needs_a_login(client, url):
    response = client.get(url)
    assert response.status_code == 302 and response["Location"] == f"/accounts/login/?next={url}"
