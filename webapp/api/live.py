"""The cheap poll of a job's state for API clients: GET /api/v1/jobs/<id>/state.

Read from the snapshot the worker publishes (webapp/jobs/live.py), or from the row when there is
none, without the serializers of the full job resource:

* `ETag` on every answer; `If-None-Match` with the current one answers 304 (nothing changed);
* `?wait=SECONDS` (at most LIVE_WAIT_MAX_SECONDS) with `If-None-Match` holds the request until
  the job changes (200 with its new state) or the time is up (304): one request per change
  instead of one per second. It is an async view: a waiting request holds a connection, not a
  thread.

Authentication is the API's own (token or session, through DRF's authentication classes); the
owner is checked against the snapshot's. Another person's job, or one that does not exist, is 404.
"""

from __future__ import annotations

import asyncio
import json

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.urls import reverse
from rest_framework.request import Request
from rest_framework.settings import api_settings

from webapp.jobs import live
from webapp.models import StyleJob

# What an API client is told (the page's labels and page URLs stay with the page).
FIELDS = ("id", "status", "progress", "step", "total_steps", "scale", "num_scales", "iteration", "iterations",
          "loss", "eta_seconds", "elapsed_seconds", "attempts", "cancel_requested", "error", "finished")


async def job_state(request, pk):
    if request.method not in ("GET", "HEAD"):
        return _error("Only GET.", 405)
    user = await sync_to_async(_authenticated_user)(request)
    if user is None:
        return _error("Authentication credentials were not provided.", 401)
    wait = _wait_seconds(request.GET.get("wait"))
    if wait is None:
        return _error(f"wait must be a number of seconds from 0 to {settings.LIVE_WAIT_MAX_SECONDS}.", 400)
    state = await _current(pk)
    if state is None or not (state["owner"] == user.pk or user.is_staff):
        return _error("Not found.", 404)
    known = request.headers.get("If-None-Match", "").strip()
    if known == _etag(state) and wait:
        state = await _next_change(pk, state, wait)
    if known == _etag(state):
        return _answer(HttpResponse(status=304), state)
    return _answer(JsonResponse(_public(request, state)), state)


def _authenticated_user(request):
    """The API's authentication (the same classes as every API view), or None."""
    drf_request = Request(request, authenticators=[cls() for cls in api_settings.DEFAULT_AUTHENTICATION_CLASSES])
    user = drf_request.user
    return user if user.is_authenticated else None


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
    return await sync_to_async(live.snapshot_of)(job) if job is not None else None


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
                fresh = message
            return fresh or state
    except live.Unavailable:  # no push: look at the row again once a second
        while loop.time() < deadline:
            await asyncio.sleep(min(1.0, deadline - loop.time()))
            fresh = await _current(job_id)
            if fresh is not None and fresh["tag"] != state["tag"]:
                return fresh
        return state


def _public(request, state: dict) -> dict:
    body = {name: state.get(name) for name in FIELDS}
    body["url"] = request.build_absolute_uri(reverse("api:job-detail", args=[state["id"]]))
    body["result_url"] = (request.build_absolute_uri(reverse("api:job-result", args=[state["id"]]))
                          if state["status"] == StyleJob.Status.SUCCEEDED else None)
    return body


def _etag(state: dict) -> str:
    return f'"{state["tag"]}"'


def _answer(response: HttpResponse, state: dict) -> HttpResponse:
    response["ETag"] = _etag(state)
    response["Cache-Control"] = "private, no-cache"  # a cache may keep it, but must ask again (with the ETag)
    return response


def _error(message: str, status: int) -> JsonResponse:
    return JsonResponse({"detail": message}, status=status)


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
