"""The cheap poll of a job's state for API clients: GET /api/v1/jobs/<id>/state.

Read from the snapshot the worker publishes (webapp/jobs/live.py), or from the row when there is
none, without the serializers of the full job resource:

* `ETag` on every answer; `If-None-Match` with the current one answers 304 (nothing changed);
* `?wait=SECONDS` (at most LIVE_WAIT_MAX_SECONDS) with `If-None-Match` holds the request until
  the job changes (200 with its new state) or the time is up (304): one request per change
  instead of one per second. A waiting request holds a connection, not a thread.

Authentication is the API's own (token or session, through DRF's authentication classes); the
owner is checked against the snapshot's. Another person's job, or one that does not exist, is 404.
A token's person is remembered by the web process for at most AUTH_CACHE_SECONDS, so a poll
costs no database query: a revoked token still polls for that long.

Two doors, one answer (answer()): StatePolls, in front of Django (webapp/asgi.py), serves every
poll with a valid token about a job with a published state, without Django's middleware chain
(its synchronous middleware cost a thread hop each, several times the rest); it checks a token it
does not remember with the API's authentication and nothing else. Everything else (a bad token, a
session, a job with nothing published) goes through Django's URL, the view job_state below.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
import time
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.request import split_domain_port, validate_host
from django.urls import reverse
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.settings import api_settings

from webapp.jobs import live
from webapp.models import StyleJob

AUTH_CACHE_SECONDS = 10
AUTH_CACHE_SIZE = 10_000  # tokens remembered per web process (all forgotten when it is full)

# What an API client is told (the page's labels and page URLs stay with the page).
FIELDS = ("id", "status", "progress", "step", "total_steps", "scale", "num_scales", "iteration", "iterations",
          "loss", "eta_seconds", "elapsed_seconds", "attempts", "cancel_requested", "error", "finished")


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict | None = None  # JSON
    etag: str | None = None


async def answer(job_id: str, person: _Person, known: str, wait_text: str | None, base: str,
                 state: dict | None = None) -> Answer:
    """The answer to one poll: `known` the If-None-Match given, `wait_text` the `wait` asked for,
    `base` the scheme and host to write URLs with; `state` the job's, if already read."""
    wait = _wait_seconds(wait_text)
    if wait is None:
        return Answer(400, {"detail": f"wait must be a number of seconds from 0 to {settings.LIVE_WAIT_MAX_SECONDS}."})
    state = state or await _current(job_id)
    if state is None or not (state["owner"] == person.pk or person.is_staff):
        return Answer(404, {"detail": "Not found."})
    if known == _etag(state) and wait:
        state = await _next_change(job_id, state, wait)
    if known == _etag(state):
        return Answer(304, etag=_etag(state))
    return Answer(200, _public(base, state), _etag(state))


# -- Django's door ---------------------------------------------------------------------------

async def job_state(request, pk):
    if request.method not in ("GET", "HEAD"):
        return JsonResponse({"detail": "Only GET."}, status=405)
    person = await _person(request)
    if person is None:
        return JsonResponse({"detail": "Authentication credentials were not provided."}, status=401)
    result = await answer(str(pk), person, request.headers.get("If-None-Match", "").strip(), request.GET.get("wait"),
                          f"{request.scheme}://{request.get_host()}")
    response = HttpResponse(status=304) if result.status == 304 else JsonResponse(result.body, status=result.status)
    if result.etag:
        response["ETag"] = result.etag
        response["Cache-Control"] = "private, no-cache"  # a cache may keep it, but must ask again (with the ETag)
    return response


# -- the door in front of Django -------------------------------------------------------------

class StatePolls:
    """ASGI, in front of Django: the polls of a token this process knows, about a job whose state is
    published; every other request goes on to Django."""

    PATH = re.compile(r"^/api/v1/jobs/([0-9a-fA-F-]{36})/state$")

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        result = await self._answer(scope) if scope["type"] == "http" else None
        if result is None:
            return await self.app(scope, receive, send)
        body = b"" if result.status == 304 else json.dumps(result.body).encode()
        headers = [(b"x-content-type-options", b"nosniff"), (b"content-length", str(len(body)).encode())]
        if result.status != 304:
            headers.append((b"content-type", b"application/json"))
        if result.etag:
            headers += [(b"etag", result.etag.encode()), (b"cache-control", b"private, no-cache")]
        await send({"type": "http.response.start", "status": result.status, "headers": headers})
        await send({"type": "http.response.body", "body": body if scope["method"] != "HEAD" else b""})

    async def _answer(self, scope) -> Answer | None:
        match = self.PATH.match(scope["path"])
        if not match or scope["method"] not in ("GET", "HEAD") or not live.enabled():
            return None
        headers = dict(scope["headers"])
        host = headers.get(b"host", b"").decode("latin-1")
        credentials = headers.get(b"authorization", b"").decode("latin-1")
        if not credentials or not validate_host(split_domain_port(host)[0], settings.ALLOWED_HOSTS):
            return None  # Django authenticates the session, or refuses the host
        person = await _person_for(credentials, lambda: _authenticated_in_front(credentials))
        if person is None:
            return None  # Django answers the bad token (401)
        job_id = match.group(1).lower()
        try:
            state = await live.read_snapshot(job_id)
        except live.Unavailable:
            return None
        if state is None:
            return None  # Django rebuilds it from the row
        wait = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("wait", [None])[0]
        return await answer(job_id, person, headers.get(b"if-none-match", b"").decode("latin-1").strip(), wait,
                            f"{scope.get('scheme', 'http')}://{host}", state)


# -- who is asking ---------------------------------------------------------------------------

@dataclass(frozen=True)
class _Person:
    pk: int
    is_staff: bool
    until: float  # time.monotonic() after which the token is asked about again


_people_by_token: dict[str, _Person] = {}


def _known(credentials: str) -> tuple[str, _Person | None]:
    """(the cache key of an Authorization header, the person it was seen to be recently)."""
    key = hashlib.sha256(credentials.encode()).hexdigest() if credentials else ""
    known = _people_by_token.get(key) if key else None
    return key, known if known is not None and known.until > time.monotonic() else None


async def _person(request) -> _Person | None:
    """Who is asking: a token remembered for at most AUTH_CACHE_SECONDS, else the API's authentication."""
    return await _person_for(request.headers.get("Authorization", ""), lambda: _authenticated_user(request))


async def _person_for(credentials: str, authenticate: Callable[[], Any]) -> _Person | None:
    """The person remembered for these credentials, else authenticate()'s (run in a thread)."""
    key, known = _known(credentials)
    if known is not None:
        return known
    user = await sync_to_async(authenticate)()
    if user is None:
        return None
    # Each person is asked about again after 75-100 % of the time: two hundred clients that started
    # together would otherwise all be checked again in the same instant, every AUTH_CACHE_SECONDS.
    person = _Person(user.pk, user.is_staff, time.monotonic() + AUTH_CACHE_SECONDS * random.uniform(0.75, 1.0))
    if key:
        if len(_people_by_token) >= AUTH_CACHE_SIZE:
            _people_by_token.clear()
        _people_by_token[key] = person
    return person


def _authenticated_user(request):
    """The API's authentication (the same classes as every API view), or None."""
    drf_request = Request(request, authenticators=[cls() for cls in api_settings.DEFAULT_AUTHENTICATION_CLASSES])
    try:
        user = drf_request.user
    except exceptions.AuthenticationFailed:  # a bad token: as if none had been sent
        return None
    return user if user.is_authenticated else None


def _authenticated_in_front(credentials: str):
    """_authenticated_user() of a request that carries only these credentials (the session class
    finds no session on it and passes), for StatePolls; as no request cycle ends here, the
    database connection is given back as Django does at the end of one."""
    request = HttpRequest()
    request.META["HTTP_AUTHORIZATION"] = credentials
    try:
        return _authenticated_user(request)
    finally:
        close_old_connections()


# -- the job's state -------------------------------------------------------------------------

def _wait_seconds(value: str | None) -> float | None:
    if value is None:
        return 0.0
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 <= seconds <= settings.LIVE_WAIT_MAX_SECONDS else None


async def _current(job_id) -> dict | None:
    """The published state, or the row's (nothing published yet, Redis away or off)."""
    if live.enabled():
        try:
            state = await live.read_snapshot(job_id)
            if state is not None:
                return state
        except live.Unavailable:
            pass
    job = await StyleJob.objects.select_related("content").filter(pk=job_id).afirst()
    if job is None:
        return None
    state = await sync_to_async(live.snapshot_of)(job)
    if live.enabled():
        await live.remember(state)
    return state


async def _next_change(job_id, state: dict, wait: float) -> dict:
    """The job's state once it differs from `state`, or `state` after `wait` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    try:
        async with live.listen(job_id) as queue:
            fresh = await _current(job_id)  # it may have changed before the subscription
            while fresh is not None and fresh["tag"] == state["tag"]:
                left = deadline - loop.time()
                if left <= 0:
                    break
                try:
                    message = await asyncio.wait_for(queue.get(), left)
                except asyncio.TimeoutError:
                    break
                if message is None:
                    break
                fresh = message[0]
            return fresh or state
    except live.Unavailable:  # no push: look at the row again once a second
        while loop.time() < deadline:
            await asyncio.sleep(min(1.0, deadline - loop.time()))
            fresh = await _current(job_id)
            if fresh is not None and fresh["tag"] != state["tag"]:
                return fresh
        return state


def _public(base: str, state: dict) -> dict:
    body = {name: state.get(name) for name in FIELDS}
    body["url"] = base + reverse("api:job-detail", args=[state["id"]])
    body["result_url"] = (base + reverse("api:job-result", args=[state["id"]])
                          if state["status"] == StyleJob.Status.SUCCEEDED else None)
    return body


def _etag(state: dict) -> str:
    return f'"{state["tag"]}"'


def add_to_schema(result, generator, request, public):
    """drf-spectacular postprocessing hook: this plain Django view in the OpenAPI schema too."""
    state = {"type": "object", "properties": {
        **{name: {"type": "number", "nullable": True} for name in ("progress", "loss", "eta_seconds",
                                                                     "elapsed_seconds")},
        **{name: {"type": "integer"} for name in ("step", "total_steps", "scale", "num_scales", "iteration",
                                                  "iterations", "attempts")},
        "id": {"type": "string", "format": "uuid"},
        "status": {"type": "string", "enum": list(StyleJob.Status.values)},
        "cancel_requested": {"type": "boolean"}, "finished": {"type": "boolean"},
        "error": {"type": "string"},
        "url": {"type": "string", "format": "uri"},
        "result_url": {"type": "string", "format": "uri", "nullable": True}}}
    result.setdefault("components", {}).setdefault("schemas", {})["JobState"] = state
    detail = {"application/json": {"schema": {"type": "object", "properties": {"detail": {"type": "string"}}}}}
    result["paths"]["/api/v1/jobs/{id}/state"] = {"get": {
        "operationId": "jobs_state_retrieve",
        "summary": "A job's state, cheaply: ETag, 304, long poll",
        "description": __doc__.split("\n\n", 1)[1],
        "tags": ["jobs"],
        "security": [{"tokenAuth": []}, {"cookieAuth": []}],
        "parameters": [
            {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}},
            {"name": "wait", "in": "query", "required": False,
             "schema": {"type": "number", "minimum": 0, "maximum": settings.LIVE_WAIT_MAX_SECONDS},
             "description": "With If-None-Match: hold the request until the job changes, at most this long."},
            {"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"},
             "description": "The ETag of the state the client has."}],
        "responses": {
            "200": {"description": "The job's state.", "headers": {"ETag": {"schema": {"type": "string"}}},
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/JobState"}}}},
            "304": {"description": "Unchanged since the ETag given."},
            "400": {"description": "A bad `wait`.", "content": detail},
            "401": {"description": "No or bad token.", "content": detail},
            "404": {"description": "Not found (or another person's).", "content": detail}}}}
    return result

