"""A job's live state, pushed through Redis: every change is published by whoever makes it (the
lifecycle's transitions, the worker's progress writes), and read by the job page's event stream
(pages/views/live.py) and the API's cheap poll (api/live.py) without asking the database.

In the Redis of REDIS_URL (unset: nothing is pushed; the pages poll and the API reads the rows):

    job:<id>:state     the latest state (present.job_state without its loss history) with the owner's
                       id, its `tag` (a hash of the state: the ETag and the event id) and `published`
                       (the publisher's time.time(), so a reader can tell how late it is); a day's TTL
    job:<id>:history   its loss curve (the thinned points), for a watcher that (re)connects
    job:<id>:events    a channel: the same state and the loss points added since the last message

The database stays the truth: a snapshot that is missing (expired, Redis restarted without its
data) is rebuilt from the row by whoever needs it. Publishing never fails its caller (a job does
not stop because Redis blinked): errors are logged, at most once a minute.

One Redis subscription per web process serves every watcher in it (_Hub): a thousand people
watching their jobs make a thousand asyncio queues, not a thousand Redis connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
import weakref
from typing import Any, AsyncIterator, Iterable

from django.conf import settings

from ..models import StyleJob
from .present import job_state

log = logging.getLogger(__name__)

STATE_TTL_SECONDS = 24 * 3600
SOCKET_TIMEOUT = 0.5  # s; a publish waits this long at most for Redis (a job never waits long for it)
READ_TIMEOUT = 3.0  # s; a web process under load may take a while to read the answer it asked for
_last_error_logged = [0.0]


def enabled() -> bool:
    return bool(settings.LIVE_UPDATES_URL)


def state_key(job_id) -> str:
    return f"job:{job_id}:state"


def events_channel(job_id) -> str:
    return f"job:{job_id}:events"


def history_key(job_id) -> str:
    return f"job:{job_id}:history"


def snapshot_of(job: StyleJob) -> dict[str, Any]:
    """The job's state as published: no loss history, the owner's id, and the tag of the rest."""
    state = job_state(job, history=False)
    state.pop("loss_history", None)
    state["owner"] = job.owner_id
    state["tag"] = tag_of(state)
    return state


def tag_of(state: dict[str, Any]) -> str:
    """A short hash of what a watcher sees (time-independent fields only: `published` is left out)."""
    body = {k: v for k, v in state.items() if k not in ("tag", "published", "loss_history", "loss_history_after")}
    return hashlib.sha1(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:16]


# -- publishing (sync: the lifecycle and the worker) -------------------------------------------

def publish(job: StyleJob, new_points: Iterable[dict] | None = None, after_step: int | None = None) -> None:
    """Store the job's state and loss curve (job.loss_history) and tell its watchers; `new_points`
    are the loss-curve points added after step `after_step` (the page appends them)."""
    if not enabled():
        return
    state = {**snapshot_of(job), "published": time.time()}
    message = dict(state)
    if new_points is not None:
        message.update(loss_history=list(new_points), loss_history_after=after_step)
    try:
        with _client().pipeline(transaction=False) as pipe:
            pipe.set(state_key(job.pk), json.dumps(state, default=str), ex=STATE_TTL_SECONDS)
            pipe.set(history_key(job.pk), json.dumps(job.loss_history or [], default=str), ex=STATE_TTL_SECONDS)
            pipe.publish(events_channel(job.pk), json.dumps(message, default=str))
            pipe.execute()
    except Exception as exc:  # noqa: BLE001 (any Redis or network error: the job goes on)
        _log_error("could not publish job %s's state: %s", job.pk, exc)


def publish_row(job_id) -> None:
    """Publish the job's state as its row says now (after a transition)."""
    if not enabled():
        return
    job = StyleJob.objects.filter(pk=job_id).first()
    if job is not None:
        publish(job)


def _client():
    import redis

    return _clients.setdefault(settings.LIVE_UPDATES_URL, redis.Redis.from_url(
        settings.LIVE_UPDATES_URL, socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=SOCKET_TIMEOUT))


_clients: dict[str, Any] = {}


def _log_error(message: str, *args) -> None:
    now = time.monotonic()
    if now - _last_error_logged[0] > 60:
        _last_error_logged[0] = now
        log.warning(message, *args)


# -- reading (async: the web's event stream and long polls) ----------------------------------

class Unavailable(Exception):
    """Redis cannot be read now: the caller falls back (the page to polling, the API to the row)."""


async def read_snapshot(job_id) -> dict[str, Any] | None:
    """The published state of the job, None if there is none; raises Unavailable."""
    try:
        raw = await _async_client().get(state_key(job_id))
    except Exception as exc:  # noqa: BLE001
        raise Unavailable(str(exc)) from exc
    return json.loads(raw) if raw else None


async def read_state_with_history(job_id) -> dict[str, Any] | None:
    """The published state with its loss curve (`loss_history`), None if nothing was published;
    raises Unavailable."""
    try:
        raw_state, raw_history = await _async_client().mget(state_key(job_id), history_key(job_id))
    except Exception as exc:  # noqa: BLE001
        raise Unavailable(str(exc)) from exc
    if not raw_state:
        return None
    return {**json.loads(raw_state), "loss_history": json.loads(raw_history) if raw_history else []}


async def reachable() -> bool:
    """Whether Redis answers: this process's subscription is up, or a PING comes back."""
    hub = _Hub._by_loop.get(asyncio.get_running_loop())
    if hub is not None and hub.ready.is_set() and hub.failed is None and not hub.task.done():
        return True
    try:
        return bool(await _async_client().ping())
    except Exception:  # noqa: BLE001
        return False


async def remember(state: dict[str, Any], history: list | None = None) -> None:
    """Store a state (and loss curve) rebuilt from the row (nothing was published, or Redis lost
    it), so the next reader finds it; quietly does nothing if Redis cannot take it."""
    try:
        # nx: a state published meanwhile is newer: it stays.
        await _async_client().set(state_key(state["id"]), json.dumps(state, default=str), ex=STATE_TTL_SECONDS, nx=True)
        if history is not None:
            await _async_client().set(history_key(state["id"]), json.dumps(history, default=str),
                                      ex=STATE_TTL_SECONDS, nx=True)
    except Exception as exc:  # noqa: BLE001
        _log_error("could not store job %s's state: %s", state["id"], exc)


def _async_client():
    """One connection pool per event loop and URL (a web process has one loop; each request of a
    WSGI test server has its own)."""
    import redis.asyncio as aioredis

    clients = _async_clients.setdefault(asyncio.get_running_loop(), {})
    url = settings.LIVE_UPDATES_URL
    if url not in clients:
        clients[url] = aioredis.Redis.from_url(url, socket_timeout=READ_TIMEOUT, socket_connect_timeout=READ_TIMEOUT)
    return clients[url]


_async_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@contextlib.asynccontextmanager
async def listen(job_id) -> AsyncIterator[asyncio.Queue]:
    """A queue that receives every message published about the job from now on, as (the message,
    its JSON text) — a thousand watchers of one job need not write it out a thousand times — and
    None if the subscription is lost (then the watcher should end and the client reconnect).
    Raises Unavailable if Redis cannot be subscribed to."""
    hub = await _Hub.join()
    queue: asyncio.Queue = asyncio.Queue()
    hub.queues.setdefault(str(job_id), set()).add(queue)
    try:
        yield queue
    finally:
        watchers = hub.queues.get(str(job_id), set())
        watchers.discard(queue)
        if not watchers:
            hub.queues.pop(str(job_id), None)
        await hub.leave()


class _Hub:
    """The web process's one subscription to every job's channel (per event loop), shared by its
    watchers and closed when the last one leaves."""

    _by_loop: dict[asyncio.AbstractEventLoop, _Hub] = {}

    def __init__(self):
        self.queues: dict[str, set[asyncio.Queue]] = {}
        self.members = 0
        self.ready = asyncio.Event()
        self.failed: Exception | None = None
        self.task: asyncio.Task | None = None

    @classmethod
    async def join(cls) -> _Hub:
        loop = asyncio.get_running_loop()
        hub = cls._by_loop.get(loop)
        if hub is None or hub.task is None or hub.task.done():
            hub = cls._by_loop[loop] = cls()
            hub.task = loop.create_task(hub._run())
        hub.members += 1
        await hub.ready.wait()
        if hub.failed is not None:
            await hub.leave()
            raise Unavailable(str(hub.failed))
        return hub

    async def leave(self) -> None:
        self.members -= 1
        if self.members <= 0 and self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
            if self._by_loop.get(asyncio.get_running_loop()) is self:
                del self._by_loop[asyncio.get_running_loop()]

    async def _run(self) -> None:
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(settings.LIVE_UPDATES_URL, socket_connect_timeout=READ_TIMEOUT,
                                         health_check_interval=30)
        try:
            async with client.pubsub() as pubsub:
                await pubsub.psubscribe(events_channel("*"))
                await pubsub.get_message(timeout=READ_TIMEOUT)  # the subscription's confirmation
                self.ready.set()
                async for message in pubsub.listen():
                    if message["type"] == "pmessage":
                        self._dispatch(message["channel"], message["data"])
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 (Redis went away: every watcher ends, clients reconnect)
            self.failed = exc
            _log_error("live updates: the subscription to Redis ended: %s", exc)
        finally:
            self.ready.set()
            for watchers in self.queues.values():
                for queue in watchers:
                    queue.put_nowait(None)
            await client.aclose()

    def _dispatch(self, channel: bytes, data: bytes) -> None:
        job_id = channel.decode().split(":")[1]
        watchers = self.queues.get(job_id)
        if not watchers:
            return
        text = data.decode()
        item = (json.loads(text), text)
        for queue in watchers:
            queue.put_nowait(item)
