"""A job's live state is pushed through a real Redis: the lifecycle and the worker's progress writer
publish each change, and the job page's event stream (GET /jobs/<id>/events, JobEvents in front of
Django) delivers it, to the holder of the page's ticket."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from unittest import mock

import pytest
from asgiref.sync import sync_to_async

from webapp.jobs import lifecycle, live
from webapp.models import StyleJob
from webapp.pages.views.live import JobEvents, events_url
from webapp.worker.progress import JobProgress

from tests.webapp.test_progress import progress_at

Status = StyleJob.Status


@pytest.fixture
def live_redis(redis_factory, settings) -> str:
    """Live updates on, through a private redis-server."""
    settings.LIVE_UPDATES_URL = redis_factory().url
    return settings.LIVE_UPDATES_URL


def published(job) -> dict | None:
    raw = live._client().get(live.state_key(job.pk))
    return json.loads(raw) if raw else None


@pytest.mark.django_db(transaction=True)
def test_each_transition_publishes_the_jobs_state_with_its_owner(live_redis, make_job):
    job = make_job()
    assert (published(job)["status"], published(job)["owner"]) == (Status.QUEUED, job.owner_id)
    lifecycle.claim(job.pk, "gpu0@box")
    assert published(job)["status"] == Status.RUNNING
    lifecycle.cancel(job)
    assert published(job)["cancel_requested"] is True


@pytest.mark.django_db(transaction=True)
def test_a_progress_write_publishes_the_state_and_only_the_new_loss_points(live_redis, make_job, settings):
    settings.PROGRESS_EVERY_SECONDS = settings.PREVIEW_EVERY_SECONDS = 0
    job = lifecycle.claim(make_job().pk, "gpu0@box")
    pubsub = live._client().pubsub()
    pubsub.subscribe(live.events_channel(job.pk))
    pubsub.get_message(timeout=1)  # the subscription's confirmation
    writer = JobProgress(job)
    for step in (1, 2, 3):
        writer(progress_at(step, total=10))
    messages = [json.loads(pubsub.get_message(timeout=2)["data"]) for _ in range(3)]
    assert [m["step"] for m in messages] == [1, 2, 3]
    assert [[p["step"] for p in m["loss_history"]] for m in messages] == [[1], [2], [3]]
    assert [m["loss_history_after"] for m in messages] == [0, 1, 2]
    assert published(job)["step"] == 3 and "loss_history" not in published(job)


@pytest.mark.django_db
def test_publishing_with_redis_gone_does_not_fail_the_caller(settings, make_job):
    settings.LIVE_UPDATES_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    job = make_job()
    live.publish(job)  # logged, not raised
    assert lifecycle.claim(job.pk, "gpu0@box").status == Status.RUNNING


# -- the page's event stream (JobEvents, in front of Django) ----------------------------------

class Stream:
    """One request to an ASGI app, its response read event by event; disconnect() as a browser
    that goes away."""

    def __init__(self, app, path: str, query: str = "", headers: dict | None = None):
        self.incoming: asyncio.Queue = asyncio.Queue()
        self.chunks: asyncio.Queue = asyncio.Queue()
        self.start: dict = {}
        self.buffer = ""
        scope = {"type": "http", "method": "GET", "path": path, "query_string": query.encode(),
                 "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]}
        self.task = asyncio.ensure_future(app(scope, self.incoming.get, self._send))

    async def _send(self, message):
        if message["type"] == "http.response.start":
            self.start = message
        else:
            await self.chunks.put(message.get("body", b"").decode())

    async def status(self) -> int:
        while not self.start:
            await asyncio.sleep(0.01)
        return self.start["status"]

    async def events(self, count: int, timeout: float = 10) -> list[tuple[str, dict]]:
        found = []
        while len(found) < count:
            while "\n\n" not in self.buffer:
                self.buffer += await asyncio.wait_for(self.chunks.get(), timeout)
            block, self.buffer = self.buffer.split("\n\n", 1)
            fields = dict(line.split(": ", 1) for line in block.splitlines()
                          if ": " in line and not line.startswith(":"))
            if "data" in fields:
                found.append((fields.get("event", "message"), json.loads(fields["data"])))
        return found

    async def disconnect(self) -> None:
        await self.incoming.put({"type": "http.disconnect"})
        await asyncio.wait_for(self.task, 5)


async def not_django(scope, receive, send):
    raise AssertionError(f"{scope['path']} reached Django")


def follow(job, user, **headers) -> Stream:
    url = events_url(user, job)
    path, _, query = url.partition("?")
    return Stream(JobEvents(not_django), path, query, headers)


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_the_stream_sends_the_whole_state_then_each_change_and_ends_with_the_job(live_redis, make_job, user):
    job = await sync_to_async(make_job)()
    await StyleJob.objects.filter(pk=job.pk).aupdate(loss_history=[{"step": 1, "scale": 0, "loss": 5.0, "losses": {}}])
    await sync_to_async(live.publish_row)(job.pk)
    stream = follow(job, user)
    assert await stream.status() == 200 and dict(stream.start["headers"])[b"content-type"] == b"text/event-stream"
    (_, first), = await stream.events(1)
    assert first["status"] == Status.QUEUED and first["loss_history"][0]["loss"] == 5.0

    await sync_to_async(lifecycle.claim)(job.pk, "gpu0@box")
    (_, running), = await stream.events(1)
    assert running["status"] == Status.RUNNING
    await sync_to_async(lifecycle.cancel)(job)  # a running job is asked to stop (an event), then stops
    await sync_to_async(lifecycle.confirm_cancelled)(await StyleJob.objects.aget(pk=job.pk))
    received = await stream.events(3)
    assert received[-2][1]["status"] == Status.CANCELLED and received[-1][0] == "end"
    await asyncio.wait_for(stream.task, 5)  # the stream ended with the job


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_reconnect_with_the_last_event_id_skips_the_state_it_has(live_redis, make_job, user):
    job = await sync_to_async(make_job)()
    first = follow(job, user)
    (_, state), = await first.events(1)
    await first.disconnect()
    again = follow(job, user, **{"Last-Event-ID": state["tag"]})
    await asyncio.sleep(0.3)  # subscribed by now
    await sync_to_async(lifecycle.claim)(job.pk, "gpu0@box")
    (_, data), = await again.events(1)
    assert data["status"] == Status.RUNNING  # not the queued state it already had
    await again.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_finished_job_gets_its_final_state_and_the_end(live_redis, make_job, user):
    job = await sync_to_async(make_job)()
    await sync_to_async(lifecycle.cancel)(job)
    received = await follow(job, user).events(2)
    assert received[0][1]["status"] == Status.CANCELLED and received[1][0] == "end"


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_with_nothing_published_the_rows_state_and_curve_are_sent_and_kept(live_redis, make_job, user):
    job = await sync_to_async(make_job)()
    await StyleJob.objects.filter(pk=job.pk).aupdate(loss_history=[{"step": 1, "scale": 0, "loss": 7.0, "losses": {}}])
    live._client().delete(live.state_key(job.pk), live.history_key(job.pk))  # Redis lost them
    stream = follow(job, user)
    (_, first), = await stream.events(1)
    assert first["status"] == Status.QUEUED and first["loss_history"][0]["loss"] == 7.0
    assert published(job)["tag"] == first["tag"]
    await stream.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_client_that_goes_away_leaves_its_subscription_at_once(live_redis, make_job, user):
    job = await sync_to_async(make_job)()
    stream = follow(job, user)
    await stream.events(1)
    hub = live._Hub._by_loop[asyncio.get_running_loop()]
    assert hub.queues[str(job.pk)]
    await stream.disconnect()
    assert str(job.pk) not in hub.queues and asyncio.get_running_loop() not in live._Hub._by_loop


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_stream_needs_a_fresh_ticket_for_that_job_and_redis(live_redis, make_job, user, other, settings):
    job, another = await sync_to_async(make_job)(), await sync_to_async(make_job)()
    path = f"/jobs/{job.pk}/events"
    ticket_of_another = events_url(user, another).partition("?")[2]
    genuine = events_url(user, job).partition("?")[2]
    for query in ("", "ticket=forged", ticket_of_another, genuine[:-3] + "abc"):
        assert await Stream(JobEvents(not_django), path, query).status() == 403
    settings.LIVE_TICKET_SECONDS = 60
    with freeze_in(61):
        assert await Stream(JobEvents(not_django), path, genuine).status() == 403
    await StyleJob.objects.filter(pk=job.pk).aupdate(owner=other)  # no longer the ticket's person's
    await sync_to_async(live.publish_row)(job.pk)
    ended = Stream(JobEvents(not_django), path, genuine)
    await asyncio.wait_for(ended.task, 5)  # the stream ends at once, telling nothing
    sent = "".join(ended.chunks.get_nowait() for _ in range(ended.chunks.qsize()))
    assert "data:" not in sent
    settings.LIVE_UPDATES_URL = "redis://127.0.0.1:1/0"  # Redis away
    assert await Stream(JobEvents(not_django), path, genuine).status() == 503
    settings.LIVE_UPDATES_URL = None
    assert await Stream(JobEvents(not_django), path, genuine).status() == 503


@contextlib.contextmanager
def freeze_in(seconds: float):
    """time.time() `seconds` ahead (signing's max_age reads it)."""
    real = time.time
    with mock.patch("time.time", lambda: real() + seconds):
        yield


@pytest.mark.asyncio
async def test_other_requests_go_on_to_django():
    reached = []

    async def django(scope, receive, send):
        reached.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})

    for path in ("/jobs/", "/jobs/1/events", "/api/v1/jobs/"):
        assert await Stream(JobEvents(django), path).status() == 200
    assert reached == ["/jobs/", "/jobs/1/events", "/api/v1/jobs/"]


@pytest.mark.django_db
def test_without_the_asgi_front_the_page_is_told_to_poll(client, user, make_job):
    client.force_login(user)
    assert client.get(events_url(user, make_job())).status_code == 503
