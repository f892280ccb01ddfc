"""The cheap poll of a job's state (GET /api/v1/jobs/<id>/state): from the snapshot the worker
publishes in a real Redis, or the row; ETag and 304; a long poll that returns at the next change."""

from __future__ import annotations

import threading
import time

import pytest

from webapp.jobs import lifecycle, live
from webapp.models import StyleJob

Status = StyleJob.Status
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def live_redis(redis_factory, settings) -> str:
    settings.LIVE_UPDATES_URL = redis_factory().url
    return settings.LIVE_UPDATES_URL


def state_of(api, job, **headers):
    return api.get(f"/api/v1/jobs/{job.pk}/state", headers=headers)


def test_it_answers_the_published_state_with_an_etag_and_304_while_it_is_unchanged(live_redis, api, make_job):
    job = make_job()
    first = state_of(api, job)
    assert first.status_code == 200 and first.json()["status"] == Status.QUEUED
    assert first.json()["url"].endswith(f"/api/v1/jobs/{job.pk}/") and first.json()["result_url"] is None
    unchanged = state_of(api, job, If_None_Match=first["ETag"])
    assert unchanged.status_code == 304 and unchanged["ETag"] == first["ETag"]
    lifecycle.claim(job.pk, "gpu0@box")
    changed = state_of(api, job, If_None_Match=first["ETag"])
    assert changed.status_code == 200 and changed.json()["status"] == Status.RUNNING
    assert changed["ETag"] != first["ETag"]


def test_a_long_poll_returns_at_the_next_change(live_redis, api, make_job):
    job = make_job()
    etag = state_of(api, job)["ETag"]
    threading.Timer(0.5, lambda: lifecycle.claim(job.pk, "gpu0@box")).start()
    started = time.monotonic()
    response = api.get(f"/api/v1/jobs/{job.pk}/state?wait=20", headers={"If-None-Match": etag})
    assert response.status_code == 200 and response.json()["status"] == Status.RUNNING
    assert time.monotonic() - started < 15  # it did not wait out the 20 s


def test_a_long_poll_with_nothing_happening_ends_with_304(live_redis, api, make_job):
    job = make_job()
    etag = state_of(api, job)["ETag"]
    response = api.get(f"/api/v1/jobs/{job.pk}/state?wait=0.5", headers={"If-None-Match": etag})
    assert response.status_code == 304


def test_without_a_snapshot_or_without_redis_the_row_answers(live_redis, api, make_job, settings):
    job = make_job()
    live._client().delete(live.state_key(job.pk))  # Redis restarted without its data
    assert state_of(api, job).json()["status"] == Status.QUEUED
    settings.LIVE_UPDATES_URL = "redis://127.0.0.1:1/0"
    assert state_of(api, job).json()["status"] == Status.QUEUED
    settings.LIVE_UPDATES_URL = None
    etag = state_of(api, job)["ETag"]
    assert state_of(api, job, If_None_Match=etag).status_code == 304


def test_it_is_the_owners_only_and_wait_is_bounded(live_redis, api, other_api, make_job, client):
    job = make_job()
    assert state_of(other_api, job).status_code == 404
    assert client.get(f"/api/v1/jobs/{job.pk}/state").status_code == 401
    assert api.get(f"/api/v1/jobs/{job.pk}/state?wait=31").status_code == 400
    assert api.get(f"/api/v1/jobs/{job.pk}/state?wait=soon").status_code == 400


def test_a_revoked_token_is_refused_once_the_process_stops_remembering_it(live_redis, api, user, make_job,
                                                                           monkeypatch):
    from knox.models import AuthToken

    from webapp.api import live as api_live

    job = make_job()
    assert state_of(api, job).status_code == 200
    AuthToken.objects.filter(user=user).delete()  # revoked
    monkeypatch.setattr(api_live, "AUTH_CACHE_SECONDS", 0)
    api_live._people_by_token.clear()
    assert state_of(api, job).status_code == 401


# -- the fast path in front of Django (webapp/asgi.py) -----------------------------------------

async def asgi_get(app, path: str, headers: dict[str, str], query: bytes = b"") -> tuple[int, dict]:
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "query_string": query,
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}
    await app(scope, receive, send)
    return sent[0]["status"], {k.decode(): v.decode() for k, v in sent[0]["headers"]}


@pytest.mark.asyncio
async def test_the_polls_with_a_valid_token_are_answered_in_front_of_django(live_redis, api, make_job, other_api):
    from asgiref.sync import sync_to_async

    from webapp.api import live as api_live
    from webapp.api.live import StatePolls

    job = await sync_to_async(make_job)()
    first = await sync_to_async(state_of)(api, job)
    # Forgotten, as after AUTH_CACHE_SECONDS: the door checks the token itself, without Django.
    api_live._people_by_token.clear()
    reached_django = []

    async def django(scope, receive, send):
        reached_django.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})

    app = StatePolls(django)
    path = f"/api/v1/jobs/{job.pk}/state"
    token = api._credentials["HTTP_AUTHORIZATION"]
    asked = {"Authorization": token, "Host": "testserver"}
    status, headers = await asgi_get(app, path, {**asked, "If-None-Match": first["ETag"]})
    assert (status, headers["etag"], headers["cache-control"]) == (304, first["ETag"], "private, no-cache")
    status, headers = await asgi_get(app, path, {**asked, "If-None-Match": '"other"'})
    assert status == 200 and headers["etag"] == first["ETag"] and headers["content-type"] == "application/json"
    threading.Timer(0.5, lambda: lifecycle.claim(job.pk, "gpu0@box")).start()
    status, headers = await asgi_get(app, path, {**asked, "If-None-Match": first["ETag"]}, query=b"wait=20")
    assert status == 200 and headers["etag"] != first["ETag"]  # held until the job changed
    status, _ = await asgi_get(app, path, {"Authorization": other_api._credentials["HTTP_AUTHORIZATION"],
                                           "Host": "testserver"})  # a valid token, but not the owner's
    assert status == 404 and reached_django == []
    # Django's: a bad token (its 401), a session (no token), a host not allowed, a job with nothing published.
    await asgi_get(app, path, {"Authorization": "Token not-a-token", "Host": "testserver"})
    await asgi_get(app, path, {"Host": "testserver"})
    await asgi_get(app, path, {**asked, "Host": "evil.example"})
    live._client().delete(live.state_key(job.pk))
    await asgi_get(app, path, asked)
    assert len(reached_django) == 4


def test_each_person_is_checked_again_after_three_quarters_to_all_of_the_memory_time(live_redis, api, make_job):
    """Clients that started together are not all checked again in the same instant."""
    from webapp.api import live as api_live

    job = make_job()
    api_live._people_by_token.clear()
    lifetimes = []
    for _ in range(40):
        api_live._people_by_token.clear()
        before = time.monotonic()
        assert state_of(api, job).status_code == 200
        (person,) = api_live._people_by_token.values()
        lifetimes.append(person.until - before)
    assert all(0.75 * api_live.AUTH_CACHE_SECONDS - 0.5 <= t <= api_live.AUTH_CACHE_SECONDS + 0.5 for t in lifetimes)
    assert max(lifetimes) - min(lifetimes) > 0.1 * api_live.AUTH_CACHE_SECONDS  # spread, not one instant
