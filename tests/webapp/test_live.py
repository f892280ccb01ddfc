"""A job's live state is pushed through a real Redis: the lifecycle and the worker's progress writer
publish each change, and the job page's event stream (GET /jobs/<id>/events) delivers it."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient

from webapp.jobs import lifecycle, live
from webapp.models import StyleJob
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


# -- the page's event stream -------------------------------------------------------------------

async def events(response, count: int, timeout: float = 10) -> list[tuple[str, dict]]:
    """The first `count` events of a stream: (event name, data)."""
    found, buffer = [], ""
    stream = aiter(response.streaming_content)
    while len(found) < count:
        chunk = await asyncio.wait_for(anext(stream), timeout)
        buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(":"))
            if "data" in fields:
                found.append((fields.get("event", "message"), json.loads(fields["data"])))
    return found


@pytest.fixture
def client_of(user):
    async def log_in(person=None) -> AsyncClient:
        client = AsyncClient()
        await client.aforce_login(person or user)
        return client
    return log_in


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_the_stream_sends_the_whole_state_then_each_change_and_ends_with_the_job(live_redis, make_job, client_of):
    job = await sync_to_async(make_job)()
    await StyleJob.objects.filter(pk=job.pk).aupdate(loss_history=[{"step": 1, "scale": 0, "loss": 5.0, "losses": {}}])
    client = await client_of()
    response = await client.get(f"/jobs/{job.pk}/events")
    assert response.status_code == 200 and response["Content-Type"] == "text/event-stream"
    (first,) = [data for _, data in await events(response, 1)]
    assert first["status"] == Status.QUEUED and first["loss_history"][0]["loss"] == 5.0

    await sync_to_async(lifecycle.claim)(job.pk, "gpu0@box")
    (kind, running), = await events(response, 1)
    assert running["status"] == Status.RUNNING
    await sync_to_async(lifecycle.cancel)(job)  # a running job is asked to stop (an event), then stops
    await sync_to_async(lifecycle.confirm_cancelled)(await StyleJob.objects.aget(pk=job.pk))
    received = await events(response, 3)
    assert received[-2][1]["status"] == Status.CANCELLED and received[-1][0] == "end"


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_reconnect_with_the_last_event_id_skips_the_state_it_has(live_redis, make_job, client_of):
    job = await sync_to_async(make_job)()
    client = await client_of()
    first = (await events(await client.get(f"/jobs/{job.pk}/events"), 1))[0][1]
    again = await client.get(f"/jobs/{job.pk}/events", headers={"Last-Event-ID": first["tag"]})
    await sync_to_async(lifecycle.claim)(job.pk, "gpu0@box")
    (kind, data), = await events(again, 1)
    assert data["status"] == Status.RUNNING  # not the queued state it already had


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_finished_job_gets_its_final_state_and_the_end(live_redis, make_job, client_of):
    job = await sync_to_async(make_job)()
    await sync_to_async(lifecycle.cancel)(job)
    received = await events(await (await client_of()).get(f"/jobs/{job.pk}/events"), 2)
    assert received[0][1]["status"] == Status.CANCELLED and received[1][0] == "end"


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_only_the_owner_may_follow_and_without_live_updates_the_page_is_told_to_poll(
        live_redis, make_job, client_of, other, settings):
    job = await sync_to_async(make_job)()
    assert (await (await client_of(other)).get(f"/jobs/{job.pk}/events")).status_code == 404
    assert (await AsyncClient().get(f"/jobs/{job.pk}/events")).status_code == 401
    settings.LIVE_UPDATES_URL = None
    assert (await (await client_of()).get(f"/jobs/{job.pk}/events")).status_code == 503
    settings.LIVE_UPDATES_URL = "redis://127.0.0.1:1/0"  # Redis away
    assert (await (await client_of()).get(f"/jobs/{job.pk}/events")).status_code == 503
