"""Fault 7: the broker cannot take a job when it is submitted. Redis stopped: the new-job page and
the API answer 503 with a clear message within seconds, nothing is created, and the API's request
throttle (its counters are in that Redis too) lets the request through to say so. Redis answering
but refusing writes (full: maxmemory reached) at the moment the job is committed: the job is failed
as not sent, the answer is 503, and an Idempotency-Key does not keep it."""

from __future__ import annotations

import re
import time

import pytest
from knox.models import AuthToken
from rest_framework.test import APIClient

from stylize.config import StyleConfig
from webapp.jobs import lifecycle
from webapp.api.models import IdempotencyKey
from webapp.pages.params import PARAM_FIELDS
from webapp.models import StyleJob

pytestmark = pytest.mark.django_db(transaction=True)

Status = StyleJob.Status
PARAMS = {"size": 32, "scales": 1, "iterations": 2, "seed": 3}
QUICKLY = 8  # s; a refusal must not hang the request (connect timeouts and publish retries are bounded)


@pytest.fixture
def throttle_in(settings):
    """The API throttle counts in this Redis, as it does in production (REDIS_URL set)."""
    def use(url: str) -> None:
        settings.CACHES = {**settings.CACHES, "throttle": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url, "KEY_PREFIX": "throttle",
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1}}}
    return use


@pytest.fixture
def api(person) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {AuthToken.objects.create(person, expiry=None)[1]}")
    return client


@pytest.fixture
def browser(client, person):
    client.force_login(person)
    return client


def form_data(content, style) -> dict:
    """The new-job form as a person posts it: the defaults, made tiny, a style weight typed in."""
    defaults = StyleConfig().to_dict()
    data = {name: "" if defaults[name] is None else str(defaults[name]) for name in PARAM_FIELDS}
    data.update({f"layer_{layer}": str(weight) for layer, weight in defaults["style_layers"].items()})
    data.update(normalize_content="on", content_layer="relu4_2", size="32", scales="1", iterations="2", seed="3",
                style_weight="0.02", content_image=str(content.pk), style_images=[str(style.pk)])
    return data


def input_tag(html: str, name: str, value: str | None = None) -> str:
    """The first <input> tag with that name (and value), as written in the page; "" if none."""
    for tag in re.findall(r"<input\b[^>]*>", html):
        if f'name="{name}"' in tag and (value is None or f'value="{value}"' in tag):
            return tag
    return ""


def timed(call):
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def test_with_redis_down_every_way_to_submit_answers_503_quickly_and_creates_nothing(
        redis, throttle_in, api, browser, images, caplog):
    content, style = images
    throttle_in(redis.url)
    redis.stop()

    page, seconds = timed(lambda: browser.post("/new/", form_data(content, style)))
    assert page.status_code == 503 and seconds < QUICKLY, (page.status_code, seconds)
    html = page.content.decode()
    assert "The job queue is unavailable right now; nothing was started" in html
    assert 'value="0.02"' in input_tag(html, "style_weight")  # what was entered is still there
    assert "checked" in input_tag(html, "content_image", str(content.pk))

    body = {"content": str(content.pk), "styles": [str(style.pk)], "params": PARAMS}
    for url, data in (("/api/v1/jobs/", body),
                      ("/api/v1/batches/", {"contents": [str(content.pk)], "styles": [str(style.pk)],
                                            "params": PARAMS})):
        response, seconds = timed(lambda: api.post(url, data, format="json", HTTP_IDEMPOTENCY_KEY=f"key {url}"))
        assert response.status_code == 503 and seconds < QUICKLY, (url, response.status_code, seconds)
        assert response.json()["detail"].startswith("The job queue is unavailable right now; nothing was started")
    assert not StyleJob.objects.exists() and not IdempotencyKey.objects.exists()
    assert "request rate not checked" in caplog.text  # the throttle let the requests through

    redis.start()
    again = api.post("/api/v1/jobs/", body, format="json", HTTP_IDEMPOTENCY_KEY="key /api/v1/jobs/")
    assert again.status_code == 202 and "Idempotent-Replayed" not in again  # a new attempt, not the 503
    assert list(StyleJob.objects.values_list("status", flat=True)) == [Status.QUEUED]


def test_a_job_whose_message_redis_refuses_at_the_commit_is_failed_as_not_sent_and_answered_503(
        redis, api, browser, images):
    content, style = images
    with redis.client() as client:
        client.config_set("maxmemory", 1)  # full: it still answers reads, refuses every write

    page = browser.post("/new/", form_data(content, style))
    assert page.status_code == 503 and "nothing was started" in page.content.decode()
    body = {"content": str(content.pk), "styles": [str(style.pk)], "params": PARAMS}
    response = api.post("/api/v1/jobs/", body, format="json", HTTP_IDEMPOTENCY_KEY="once")
    assert response.status_code == 503, response.content
    rows = list(StyleJob.objects.all())
    assert len(rows) == 2 and all((row.status, row.error) == (Status.FAILED, lifecycle.NOT_SENT_ERROR) for row in rows)
    assert not IdempotencyKey.objects.exists()  # a retry with the key is a new attempt

    with redis.client() as client:
        client.config_set("maxmemory", 0)
    again = api.post("/api/v1/jobs/", body, format="json", HTTP_IDEMPOTENCY_KEY="once")
    assert again.status_code == 202
    assert StyleJob.objects.get(pk=again.json()["id"]).status == Status.QUEUED
