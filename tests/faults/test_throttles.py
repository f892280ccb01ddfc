"""Throttles on what costs the server most per request: sign-ups per address, image uploads
through the API per person (a lower rate than other API calls), and the new-job page counting
its style files before storing any of them."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from tests import inputs
from tests.api.conftest import client_for, fresh_throttle  # noqa: F401 (fresh_throttle: an autouse fixture)
from webapp.models import StyleImage

pytestmark = pytest.mark.django_db

PASSWORD = "a long and unusual passphrase"


@pytest.fixture(autouse=True)
def quick_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def sign_up(name: str, address: str):
    return Client().post("/accounts/signup/", {"username": name, "password1": PASSWORD, "password2": PASSWORD},
                         REMOTE_ADDR=address)


def test_sign_ups_from_one_address_are_limited_and_others_are_not(settings):
    settings.SIGNUPS_PER_IP = 2
    assert [sign_up(f"p{i}", "203.0.113.7").status_code for i in range(2)] == [302, 302]
    refused = sign_up("p3", "203.0.113.7")
    assert refused.status_code == 429 and "Too many accounts" in refused.content.decode()
    assert not get_user_model().objects.filter(username="p3").exists()
    assert sign_up("p4", "198.51.100.2").status_code == 302


def test_sign_ups_behind_a_trusted_proxy_are_counted_per_client(settings):
    settings.SIGNUPS_PER_IP = 1
    settings.TRUSTED_PROXY_ADDRESSES = ["10.0.0.2"]
    post = {"password1": PASSWORD, "password2": PASSWORD}
    first = Client().post("/accounts/signup/", {"username": "a1", **post}, REMOTE_ADDR="10.0.0.2",
                          HTTP_X_FORWARDED_FOR="203.0.113.7")
    second = Client().post("/accounts/signup/", {"username": "a2", **post}, REMOTE_ADDR="10.0.0.2",
                           HTTP_X_FORWARDED_FOR="198.51.100.2")
    third = Client().post("/accounts/signup/", {"username": "a3", **post}, REMOTE_ADDR="10.0.0.2",
                          HTTP_X_FORWARDED_FOR="203.0.113.7")
    assert (first.status_code, second.status_code, third.status_code) == (302, 302, 429)


def upload(api, colour):
    return api.post("/api/v1/images/", {"file": SimpleUploadedFile("p.png", inputs.png(colour=colour))},
                    format="multipart")


def test_api_uploads_have_their_own_lower_rate_and_a_refused_one_stores_nothing(user, settings):
    settings.API_UPLOAD_THROTTLE_RATE = "2/minute"
    api = client_for(user)
    assert [upload(api, (i, 0, 0)).status_code for i in range(2)] == [201, 201]
    assert upload(api, (9, 0, 0)).status_code == 429
    assert StyleImage.objects.filter(owner=user).count() == 2
    assert api.get("/api/v1/images/").status_code == 200  # other calls are not counted as uploads


def test_jobs_with_files_count_as_uploads_and_jobs_by_image_id_do_not(user, settings, upload_pair, sent):
    settings.API_UPLOAD_THROTTLE_RATE = "1/minute"
    settings.JOBS_PER_USER = 10
    api = client_for(user)
    content, style = upload_pair
    by_id = {"content": str(content.pk), "styles": [str(style.pk)], "params": {"size": 32, "scales": 1}}
    assert api.post("/api/v1/jobs/", by_id, format="json").status_code == 202
    with_file = {"content": str(content.pk), "params": '{"size": 32, "scales": 1}',
                 "style_files": [SimpleUploadedFile("s.png", inputs.png(colour=(5, 5, 5)))]}
    assert api.post("/api/v1/jobs/", with_file, format="multipart").status_code == 202
    with_file["style_files"] = [SimpleUploadedFile("s.png", inputs.png(colour=(6, 6, 6)))]
    assert api.post("/api/v1/jobs/", with_file, format="multipart").status_code == 429
    assert api.post("/api/v1/jobs/", by_id, format="json").status_code == 202


@pytest.fixture
def upload_pair(user, upload):
    return upload(user, (1, 2, 3)), upload(user, (3, 2, 1))


def test_the_new_job_page_counts_style_files_before_storing_any(user, settings, upload_pair):
    settings.JOB_MAX_STYLES = 2
    content, _ = upload_pair
    browser = Client()
    browser.force_login(user)
    files = [SimpleUploadedFile(f"s{i}.png", inputs.png(colour=(i, 40, 40))) for i in range(3)]
    before = StyleImage.objects.count()
    response = browser.post("/new/", {"content_image": str(content.pk), "style_files": files})
    assert response.status_code == 400 and "at most 2 style images" in response.content.decode()
    assert StyleImage.objects.count() == before
