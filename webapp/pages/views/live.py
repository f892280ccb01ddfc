"""The job page's live feed: its state as Server-Sent Events, pushed by the worker through Redis
(webapp/jobs/live.py) instead of polled.

    GET /jobs/<id>/events          text/event-stream; `Last-Event-ID` (EventSource sends it when it
                                   reconnects) skips the state the page already has

Ownership is checked once, when the stream opens. The first event is the job's whole state (with
its loss history, from the row); each later one carries the points added since the one before.
A finished job (succeeded, failed, cancelled) ends the stream with its final state and an `end`
event. Without live updates (no REDIS_URL) or with Redis unreachable the answer is 503, and the
page polls status.json instead (static/js/job.js), saying nothing about it to the person.
"""

from __future__ import annotations

import asyncio
import json
from typing import AsyncIterator

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpResponse, StreamingHttpResponse

from ...jobs import live
from ...models import StyleJob
from .common import own_job

RETRY_MS = 2000  # how soon EventSource reconnects after a dropped stream


async def job_events(request, job_id):
    user = await request.auser()
    if not user.is_authenticated:
        return _plain("Log in to follow this job.", 401)
    if request.method != "GET":
        return _plain("Only GET.", 405)
    job = await sync_to_async(own_job)(request, job_id)  # 404 for anyone else's
    if not live.enabled() or not isinstance(request, ASGIRequest):
        # Under WSGI a stream would hold a thread, and be sent only when it ends.
        return _plain("Live updates are off; poll status.json.", 503)
    try:
        await live.read_snapshot(job.pk)  # Redis answers
    except live.Unavailable:
        return _plain("Live updates are unavailable; poll status.json.", 503)
    response = StreamingHttpResponse(_events(job.pk, request.headers.get("Last-Event-ID")),
                                     content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # a proxy must pass each event on at once
    return response


async def _events(job_id, last_id: str | None) -> AsyncIterator[str]:
    yield f"retry: {RETRY_MS}\n\n"
    try:
        async with live.listen(job_id) as queue:
            async for event in _stream(job_id, queue, last_id):
                yield event
    except live.Unavailable:
        return  # EventSource reconnects, and is refused with a 503 if Redis is still away


async def _stream(job_id, queue: asyncio.Queue, last_id: str | None) -> AsyncIterator[str]:
    """Subscribed before the row is read, so no change falls between the two."""
    row = await StyleJob.objects.select_related("content").aget(pk=job_id)
    state = await sync_to_async(_full_state)(row)
    if state["tag"] != last_id:
        yield _event(state)
    if row.is_finished:
        yield "event: end\ndata: {}\n\n"
        return
    while True:
        try:
            message = await asyncio.wait_for(queue.get(), settings.LIVE_KEEPALIVE_SECONDS)
        except asyncio.TimeoutError:
            yield ": keep-alive\n\n"
            continue
        if message is None:  # the subscription ended: EventSource reconnects
            return
        message, text = message
        yield f"id: {message['tag']}\ndata: {text}\n\n"
        if message["finished"]:
            yield "event: end\ndata: {}\n\n"
            return


def _full_state(job: StyleJob) -> dict:
    state = live.snapshot_of(job)
    state["loss_history"] = job.loss_history
    return state


def _event(state: dict) -> str:
    return f"id: {state['tag']}\ndata: {json.dumps(state, default=str)}\n\n"


def _plain(message: str, status: int) -> HttpResponse:
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")
