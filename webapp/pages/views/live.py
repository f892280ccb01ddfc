"""The job page's live feed: its state as Server-Sent Events, pushed by the worker through Redis
(webapp/jobs/live.py) instead of polled.

    GET /jobs/<id>/events?ticket=…   text/event-stream; `Last-Event-ID` (EventSource sends it when
                                     it reconnects) skips the state the page already has

Who may follow a job is decided when its page is rendered (the page's own login and owner
check): the page gets a ticket, signed with SECRET_KEY, naming the job, the person and whether
staff, valid for LIVE_TICKET_SECONDS. Opening the stream checks the ticket (and the person against
the job's published owner) once, without a session or a database query. The stream is served by
JobEvents, in front of Django (webapp/asgi.py): a burst of people opening their streams costs the
web's event loop little and no thread (Django's synchronous middleware would cost a thread hop
each). Django's URL for it (job_events) answers only where that is not in front: 503. The first event is the
job's whole state with its loss curve (from Redis; from the row if nothing is there); each later
one carries the points added since the one before. A finished job (succeeded, failed, cancelled)
ends the stream with its final state and an `end` event.

Without live updates (no REDIS_URL), without JobEvents in front, or with Redis unreachable the
answer is 503; a ticket that is missing, altered or expired is 403. Either way the page polls status.json
instead (static/js/job.js), saying nothing about it to the person.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import AsyncIterator
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core import signing
from django.http import HttpResponse
from django.urls import reverse

from ...jobs import live
from ...models import StyleJob

RETRY_MS = 2000  # how soon EventSource reconnects after a dropped stream
TICKET_SALT = "webapp.job-events"


def events_url(user, job: StyleJob) -> str:
    """The job's event stream, with the ticket for this person (who may see the job: the caller checked)."""
    ticket = signing.dumps({"j": str(job.pk), "u": user.pk, "s": bool(user.is_staff)}, salt=TICKET_SALT,
                           compress=True)
    return f"{reverse('pages:job_events', args=[job.pk])}?ticket={ticket}"


def _viewer(ticket: str | None, job_id) -> dict | None:
    """The ticket's {"u": person, "s": staff} if it is genuine, fresh and for this job."""
    try:
        claims = signing.loads(ticket or "", salt=TICKET_SALT, max_age=settings.LIVE_TICKET_SECONDS)
    except signing.BadSignature:  # also SignatureExpired
        return None
    return claims if claims.get("j") == str(job_id) else None


def job_events(request, job_id):
    """Reached only without JobEvents in front (a WSGI server, Django's test client): there a stream
    would hold a thread, and be sent only when it ends."""
    return _plain("Live updates are not served here; poll status.json.", 503)


class JobEvents:
    """ASGI, in front of Django: GET /jobs/<id>/events?ticket=… as Server-Sent Events."""

    PATH = re.compile(r"^/jobs/([0-9a-fA-F-]{36})/events$")

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        match = self.PATH.match(scope.get("path", "")) if scope["type"] == "http" else None
        if match is None:
            return await self.app(scope, receive, send)
        job_id = match.group(1).lower()
        headers = dict(scope["headers"])
        ticket = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("ticket", [None])[0]
        if scope["method"] != "GET":
            return await _send_plain(send, 405, "Only GET.")
        viewer = _viewer(ticket, job_id)
        if viewer is None:
            return await _send_plain(send, 403, "This page's live feed has expired; reload the page.")
        if not live.enabled() or not await live.reachable():
            return await _send_plain(send, 503, "Live updates are unavailable; poll status.json.")
        last_id = headers.get(b"last-event-id", b"").decode("latin-1") or None
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),  # a proxy must pass each event on at once
            (b"x-content-type-options", b"nosniff")]})
        await _until_disconnected(receive, _pump(send, _events(job_id, viewer, last_id)))


async def _pump(send, events: AsyncIterator[str]) -> None:
    async for event in events:
        await send({"type": "http.response.body", "body": event.encode(), "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _until_disconnected(receive, streaming) -> None:
    """Run the stream until it ends or the client goes (then it is cancelled: its subscription
    is left at once, not at the next keep-alive)."""
    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    tasks = {asyncio.ensure_future(streaming), asyncio.ensure_future(disconnected())}
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _send_plain(send, status: int, message: str) -> None:
    body = message.encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()),
        (b"x-content-type-options", b"nosniff")]})
    await send({"type": "http.response.body", "body": body})


async def _events(job_id, viewer: dict, last_id: str | None) -> AsyncIterator[str]:
    yield f"retry: {RETRY_MS}\n\n"
    try:
        async with live.listen(job_id) as queue:
            async for event in _stream(job_id, viewer, queue, last_id):
                yield event
    except live.Unavailable:
        return  # EventSource reconnects, and is refused with a 503 if Redis is still away


async def _stream(job_id, viewer: dict, queue: asyncio.Queue, last_id: str | None) -> AsyncIterator[str]:
    """Subscribed before the state is read, so no change falls between the two."""
    state = await live.read_state_with_history(job_id) or await _state_from_row(job_id)
    if state is None or not (state["owner"] == viewer["u"] or viewer["s"]):
        return  # deleted meanwhile, or no longer this person's: nothing to follow
    if state["tag"] != last_id:
        state.pop("published", None)  # read now, not pushed: `published` marks pushed messages only
        yield _event(state["tag"], json.dumps(state, default=str))
    if state["finished"]:
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
        yield _event(message["tag"], text)
        if message["finished"]:
            yield "event: end\ndata: {}\n\n"
            return


async def _state_from_row(job_id) -> dict | None:
    """Nothing published for the job (Redis lost it, or it was never sent): the row's state, which
    is stored for the next reader."""
    job = await StyleJob.objects.select_related("content").filter(pk=job_id).afirst()
    if job is None:
        return None
    state = await sync_to_async(live.snapshot_of)(job)
    await live.remember(state, job.loss_history)
    return {**state, "loss_history": job.loss_history}


def _event(tag: str, data: str) -> str:
    return f"id: {tag}\ndata: {data}\n\n"


def _plain(message: str, status: int) -> HttpResponse:
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")
