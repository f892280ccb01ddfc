"""Nobody let in: another person's jobs, images, files and batches are 404 everywhere (and are
there for their owner, so the 404 means something); stored files have no public URL; the API
needs a token or a session; a session's POSTs need the CSRF token; the admin needs staff; and
failed logins are limited."""

from __future__ import annotations

import importlib
import logging
import socket
import time

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import clear_url_caches
from django.utils import timezone
from rest_framework.test import APIClient

from tests import inputs
from tests.api.conftest import client_for, fresh_throttle  # noqa: F401 (fresh_throttle: an autouse fixture)
from webapp.jobs import lifecycle, storage
from webapp.pages import login_limit
from webapp.api.urls import router
from webapp.models import Batch, JobArtifact, StyleJob, UnitPatches

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media_root")]

Status = StyleJob.Status
PASSWORD = "a long and unusual passphrase"
TINY = {"size": 48, "scales": 1, "iterations": 2, "seed": 7}


@pytest.fixture(autouse=True)
def quick_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def image_of(owner, colour):
    return storage.store_upload(owner, SimpleUploadedFile("photo.png", inputs.png(colour=colour)))


def finished(job: StyleJob) -> StyleJob:
    """The job as a worker leaves it when it succeeded: preview, result, a visualisation, top patches."""
    def save(name):
        return default_storage.save(f"results/{job.pk}/{name}", ContentFile(inputs.png()))

    result = save("result.png")
    StyleJob.objects.filter(pk=job.pk).update(
        status=Status.SUCCEEDED, started=timezone.now(), finished=timezone.now(), result=result,
        preview=save("preview-a.png"), progress=1.0, attempts=1, seed=7)
    JobArtifact.objects.create(job=job, name="gram", file=save("gram.png"), position=0)
    # computed by a worker before, now read from storage
    UnitPatches.objects.create(job=job, layer="relu1_1", unit=0, file=save("patches-relu1_1-0-a.png"))
    job.refresh_from_db()
    return job


@pytest.fixture
def theirs(other, sent):
    """Bob's things: an image, a finished job in a batch, a queued job."""
    content, style = image_of(other, (200, 40, 40)), image_of(other, (20, 40, 200))
    batch = Batch.objects.create(owner=other, name="bob's batch")
    done = finished(lifecycle.create_job(other, content, [style], TINY, batch=batch))
    queued = lifecycle.create_job(other, content, [style], TINY)
    return {"image": content, "job": done, "queued": queued, "batch": batch}


def browser_of(person) -> Client:
    client = Client()
    client.force_login(person)
    return client


def fill(url: str, things: dict) -> str:
    return url.format(job=things["job"].pk, queued=things["queued"].pk, image=things["image"].pk,
                      batch=things["batch"].pk)


# -- another person's things ------------------------------------------------------------------------

PAGE_URLS = [
    "/jobs/{job}/", "/jobs/{job}/status.json", "/jobs/{job}/result.png", "/jobs/{job}/result.png?download=1",
    "/jobs/{job}/preview.png", "/jobs/{job}/thumbnail.jpg", "/jobs/{job}/visualizations/gram.png",
    "/jobs/{job}/patches.png?layer=relu1_1&unit=0", "/images/{image}/", "/images/{image}/thumbnail.jpg",
    "/new/?from={job}",
]


@pytest.mark.parametrize("url", PAGE_URLS)
def test_another_persons_pages_and_files_are_404_and_their_owners_are_not(user, other, theirs, url):
    assert browser_of(user).get(fill(url, theirs)).status_code == 404
    assert browser_of(other).get(fill(url, theirs)).status_code == 200


def test_cancelling_another_persons_job_on_the_page_is_404_and_changes_nothing(user, theirs):
    response = browser_of(user).post(fill("/jobs/{queued}/cancel/", theirs), HTTP_ACCEPT="application/json")
    assert response.status_code == 404
    theirs["queued"].refresh_from_db()
    assert theirs["queued"].status == Status.QUEUED and not theirs["queued"].cancel_requested


API_URLS = [
    "/api/v1/jobs/{job}/", "/api/v1/jobs/{job}/result/", "/api/v1/jobs/{job}/artifacts/gram/",
    "/api/v1/images/{image}/", "/api/v1/batches/{batch}/", "/api/v1/batches/{batch}/results.zip",
]


@pytest.mark.parametrize("url", API_URLS)
def test_another_persons_api_objects_are_404_and_their_owners_are_not(user, other, theirs, url):
    response = client_for(user).get(fill(url, theirs))
    assert response.status_code == 404
    assert str(theirs["job"].pk) not in response.content.decode()
    assert client_for(other).get(fill(url, theirs)).status_code == 200


def test_another_persons_lists_show_nothing_of_theirs(user, theirs):
    api = client_for(user)
    for url in ("/api/v1/jobs/", "/api/v1/images/", "/api/v1/batches/", f"/api/v1/jobs/?batch={theirs['batch'].pk}"):
        response = api.get(url)
        assert response.status_code == 200 and response.json()["results"] == [], url


def test_cancelling_or_deleting_another_persons_job_through_the_api_is_404_and_changes_nothing(user, theirs):
    api = client_for(user)
    assert api.post(fill("/api/v1/jobs/{queued}/cancel/", theirs)).status_code == 404
    assert api.delete(fill("/api/v1/jobs/{queued}/", theirs)).status_code == 404
    assert api.delete(fill("/api/v1/jobs/{job}/", theirs)).status_code == 404
    theirs["queued"].refresh_from_db()
    assert theirs["queued"].status == Status.QUEUED and not theirs["queued"].cancel_requested
    assert StyleJob.objects.filter(pk=theirs["job"].pk).exists()
    assert default_storage.exists(theirs["job"].result.name)


def test_another_persons_images_cannot_be_used_in_a_job(user, theirs, sent):
    mine = image_of(user, (1, 2, 3))
    response = client_for(user).post("/api/v1/jobs/", {"content": str(theirs["image"].pk), "styles": [str(mine.pk)],
                                                       "params": TINY}, format="json")
    assert response.status_code == 400 and "content" in response.json()
    assert not StyleJob.objects.filter(owner=user).exists()


# -- stored files have no public URL ---------------------------------------------------------------

@pytest.fixture
def urlconf_with_debug(settings):
    """The URLs as a DEBUG=1 process builds them (a `static()` for MEDIA_URL would only be
    added then); the normal ones again afterwards."""
    import webapp.urls

    settings.DEBUG = True
    importlib.reload(webapp.urls)
    clear_url_caches()
    yield
    settings.DEBUG = False
    importlib.reload(webapp.urls)
    clear_url_caches()


def media_urls(theirs) -> list[str]:
    job, image = theirs["job"], theirs["image"]
    names = [job.result.name, job.preview.name, job.artifacts.get().file.name, image.file.name]
    for name in names:
        assert default_storage.exists(name)  # the files are there: a 404 is no accident
    return [f"/media/{name}" for name in names]


@pytest.mark.parametrize("debug", [False, True], ids=["production", "DEBUG"])
def test_stored_files_are_never_served_at_media_urls(request, user, other, theirs, debug):
    if debug:
        request.getfixturevalue("urlconf_with_debug")
    for url in media_urls(theirs):
        for client in (Client(), browser_of(user), browser_of(other)):
            assert client.get(url).status_code == 404, url


# -- who may call the API ------------------------------------------------------------------------

API_CALLS = {  # route name -> (method, URL): every route of API v1
    "api-root": [("get", "/api/v1/")],
    "image-list": [("get", "/api/v1/images/"), ("post", "/api/v1/images/")],
    "image-detail": [("get", "/api/v1/images/{image}/")],
    "job-list": [("get", "/api/v1/jobs/"), ("post", "/api/v1/jobs/")],
    "job-detail": [("get", "/api/v1/jobs/{job}/"), ("delete", "/api/v1/jobs/{queued}/")],
    "job-cancel": [("post", "/api/v1/jobs/{queued}/cancel/")],
    "job-result": [("get", "/api/v1/jobs/{job}/result/")],
    "job-artifact": [("get", "/api/v1/jobs/{job}/artifacts/gram/")],
    "batch-list": [("get", "/api/v1/batches/"), ("post", "/api/v1/batches/")],
    "batch-detail": [("get", "/api/v1/batches/{batch}/")],
    "batch-results": [("get", "/api/v1/batches/{batch}/results.zip")],
}


def test_the_list_of_api_calls_covers_every_route():
    assert {pattern.name for pattern in router.urls} | {"batch-results"} == set(API_CALLS)


@pytest.mark.parametrize("token", [None, "Token not-a-real-token", "Bearer x", "Token "], ids=["none", "bad",
                                                                                             "bearer", "empty"])
def test_every_api_call_without_a_valid_token_or_session_is_401_and_changes_nothing(theirs, token):
    client = APIClient()
    if token:
        client.credentials(HTTP_AUTHORIZATION=token)
    for method, url in (call for calls in API_CALLS.values() for call in calls):
        response = getattr(client, method)(fill(url, theirs))
        assert response.status_code == 401, (method, url, response.status_code)
        assert response["WWW-Authenticate"].startswith("Token")
    theirs["queued"].refresh_from_db()
    assert theirs["queued"].status == Status.QUEUED and StyleJob.objects.count() == 2


# -- CSRF -------------------------------------------------------------------------------------------

@pytest.fixture
def csrf_browser(user):
    """Ada's browser session, checked for CSRF as a real browser's is; .token is its CSRF token."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    client.get("/new/")
    client.token = client.cookies["csrftoken"].value
    return client


@pytest.fixture
def my_things(user, sent):
    content, style = image_of(user, (200, 40, 40)), image_of(user, (20, 40, 200))
    return {"content": content, "style": style, "job": lifecycle.create_job(user, content, [style], TINY)}


def test_the_new_job_page_refuses_a_post_without_the_csrf_token(csrf_browser, my_things):
    data = {**inputs.form_data(), "content_image": str(my_things["content"].pk),
            "style_images": str(my_things["style"].pk)}
    assert csrf_browser.post("/new/", data).status_code == 403
    assert StyleJob.objects.count() == 1
    assert csrf_browser.post("/new/", {**data, "csrfmiddlewaretoken": csrf_browser.token}).status_code == 302
    assert StyleJob.objects.count() == 2


def test_cancel_refuses_a_post_without_the_csrf_token(csrf_browser, my_things):
    url = f"/jobs/{my_things['job'].pk}/cancel/"
    assert csrf_browser.post(url, HTTP_ACCEPT="application/json").status_code == 403
    my_things["job"].refresh_from_db()
    assert my_things["job"].status == Status.QUEUED
    assert csrf_browser.post(url, HTTP_ACCEPT="application/json", HTTP_X_CSRFTOKEN=csrf_browser.token).status_code == 200


def test_the_api_with_a_session_refuses_writes_without_the_csrf_token(csrf_browser, my_things):
    body = {"content": str(my_things["content"].pk), "styles": [str(my_things["style"].pk)], "params": TINY}
    job_url = f"/api/v1/jobs/{my_things['job'].pk}/"
    for response in (csrf_browser.post("/api/v1/jobs/", body, content_type="application/json"),
                     csrf_browser.post(f"{job_url}cancel/"),
                     csrf_browser.delete(job_url),
                     csrf_browser.post("/api/token/")):
        assert response.status_code == 403
    assert StyleJob.objects.count() == 1 and StyleJob.objects.get().status == Status.QUEUED
    assert csrf_browser.get(job_url).status_code == 200  # reading needs no token
    response = csrf_browser.post("/api/v1/jobs/", body, content_type="application/json",
                                 HTTP_X_CSRFTOKEN=csrf_browser.token)
    assert response.status_code == 202


# -- the admin -------------------------------------------------------------------------------------

ADMIN_URLS = ["/admin/", "/admin/auth/user/", "/admin/knox/authtoken/"]


@pytest.mark.parametrize("url", ADMIN_URLS)
def test_the_admin_sends_anyone_but_staff_to_its_login_and_shows_nothing(user, other, theirs, django_user_model, url):
    client_for(other)  # Bob has an API token, which the token admin would list
    for client in (Client(), browser_of(user)):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
        page = client.get(response["Location"]).content.decode()
        assert "bob" not in page and str(theirs["job"].pk) not in page
    admin = django_user_model.objects.create_superuser("root", password=PASSWORD)
    assert browser_of(admin).get(url).status_code == 200


# -- failed logins ---------------------------------------------------------------------------------

@pytest.fixture
def ada(user):
    user.set_password(PASSWORD)
    user.save()
    return user


@pytest.fixture
def grace(make_user):
    person = make_user("grace")
    person.set_password(PASSWORD)
    person.save()
    return person


def log_in(client, username, password=PASSWORD, url="/accounts/login/", **extra):
    return client.post(url, {"username": username, "password": password}, **extra)


def logged_in(client) -> bool:
    return "_auth_user_id" in client.session


def fail(client, username, times, **extra):
    for _ in range(times):
        response = log_in(client, username, "not the password", **extra)
        assert response.status_code == 200 and "Please enter a correct username and password" in response.content.decode()


def test_after_five_wrong_passwords_even_the_right_one_is_429(client, ada):
    fail(client, "ada", 5)
    response = log_in(client, "ada")
    assert response.status_code == 429 and login_limit.TOO_MANY in response.content.decode()
    assert not logged_in(client)
    assert log_in(client, "ADA").status_code == 429  # the same person, however typed


def test_other_usernames_are_not_affected(client, ada, grace):
    fail(client, "ada", 5)
    assert log_in(client, "ada").status_code == 429
    assert log_in(client, "grace").status_code == 302 and logged_in(client)


def test_a_successful_login_resets_the_count(client, ada):
    fail(client, "ada", 4)
    assert log_in(client, "ada").status_code == 302
    client.logout()
    fail(client, "ada", 4)  # 8 failures in all, but only 4 since the last success
    assert log_in(client, "ada").status_code == 302


def test_one_address_guessing_at_many_usernames_is_stopped_there_only(client, ada, settings):
    settings.LOGIN_FAILURES_PER_IP = 3
    for name in ("carol", "dave", "erin"):
        fail(client, name, 1, REMOTE_ADDR="203.0.113.7")
    assert log_in(client, "ada", REMOTE_ADDR="203.0.113.7").status_code == 429
    assert log_in(client, "ada", REMOTE_ADDR="198.51.100.2").status_code == 302


def test_a_locked_username_still_lets_its_owner_in_from_an_address_that_has_not_failed(client, ada):
    fail(client, "ada", 5, REMOTE_ADDR="203.0.113.7")  # a guesser locks the username...
    assert log_in(client, "ada", REMOTE_ADDR="203.0.113.7").status_code == 429
    response = log_in(Client(), "ada", REMOTE_ADDR="198.51.100.2")  # ...but not its owner, elsewhere
    assert response.status_code == 302


def test_a_locked_username_gives_each_new_address_one_wrong_guess_at_most(client, ada):
    fail(client, "ada", 5, REMOTE_ADDR="203.0.113.7")
    fail(client, "ada", 1, REMOTE_ADDR="203.0.113.8")  # checked: this address had not failed
    response = log_in(client, "ada", REMOTE_ADDR="203.0.113.8")  # now it has: refused, right password or not
    assert response.status_code == 429 and not logged_in(client)


def test_behind_a_trusted_proxy_the_address_is_the_one_the_proxy_saw(client, ada, settings):
    settings.TRUSTED_PROXY_ADDRESSES = ["10.0.0.0/8"]
    settings.LOGIN_FAILURES_PER_IP = 2
    proxy = {"REMOTE_ADDR": "10.0.0.2"}
    # The client may send any X-Forwarded-For; the proxy appends the address it saw.
    for forged in ("1.1.1.1", "2.2.2.2"):
        fail(client, "someone", 1, HTTP_X_FORWARDED_FOR=f"{forged}, 203.0.113.7", **proxy)
    assert log_in(client, "ada", HTTP_X_FORWARDED_FOR="9.9.9.9, 203.0.113.7", **proxy).status_code == 429
    assert log_in(client, "ada", HTTP_X_FORWARDED_FOR="198.51.100.2", **proxy).status_code == 302


def test_two_trusted_proxies_in_a_row_are_both_looked_past(rf, settings):
    settings.TRUSTED_PROXY_ADDRESSES = ["10.0.0.2", "10.0.0.3"]
    request = rf.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="1.1.1.1, 203.0.113.7, 10.0.0.3")
    assert login_limit.client_ip(request) == "203.0.113.7"


def test_a_client_that_connects_directly_cannot_choose_its_address_with_x_forwarded_for(client, ada, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")  # a proxy is said to be there...
    settings.TRUSTED_PROXY_ADDRESSES = ["10.0.0.2"]
    settings.LOGIN_FAILURES_PER_IP = 2
    for forged in ("1.1.1.1", "2.2.2.2"):  # ...but this client connects straight to gunicorn
        fail(client, "someone", 1, HTTP_X_FORWARDED_FOR=forged, REMOTE_ADDR="203.0.113.7")
    assert log_in(client, "ada", HTTP_X_FORWARDED_FOR="4.4.4.4", REMOTE_ADDR="203.0.113.7").status_code == 429


def test_the_count_expires_after_the_window(client, ada, settings):
    settings.LOGIN_FAILURE_WINDOW_SECONDS = 1
    fail(client, "ada", 5)
    assert log_in(client, "ada").status_code == 429
    time.sleep(1.2)
    assert log_in(client, "ada").status_code == 302


def test_the_admin_login_shares_the_limit(client, django_user_model):
    django_user_model.objects.create_superuser("root", password=PASSWORD)
    fail_admin = {"url": "/admin/login/?next=/admin/"}
    for _ in range(5):
        log_in(client, "root", "not the password", **fail_admin)
    response = log_in(client, "root", **fail_admin)
    assert response.status_code == 200 and not logged_in(client)
    assert client.get("/admin/").status_code == 302


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_without_the_cache_logins_still_work_unlimited_and_a_warning_is_logged(client, ada, settings, caplog):
    settings.CACHES = {**settings.CACHES, "throttle": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": f"redis://127.0.0.1:{closed_port()}/0"}}
    with caplog.at_level(logging.WARNING, logger="webapp.pages.login_limit"):
        fail(client, "ada", 6)
        assert log_in(client, "ada").status_code == 302 and logged_in(client)
    assert "throttle cache" in caplog.text
