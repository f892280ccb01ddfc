"""What the broker holds, read directly (Celery has no API for it): messages waiting per queue,
messages delivered but not yet acknowledged, and the task ids of both.

Kombu's Redis transport keeps a queue as one list per priority lane (`gpu`, `gpu:1` … `gpu:9`,
see webapp/celery.py) and every delivered, unacknowledged message in the `unacked` hash until
the task returns. The filesystem transport (`make run` without Redis) keeps one file per
waiting message. Every read uses a short socket timeout, so a page that asks never hangs
when Redis is down: it gets BrokerUnavailable instead.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from ..celery import app
from .lanes import LANES, QUEUE

log = logging.getLogger(__name__)

UNACKED_KEY = "unacked"  # kombu's default for the Redis transport
TIMEOUT_SECONDS = 1.0


class BrokerUnavailable(Exception):
    """The broker could not be reached (or read) within TIMEOUT_SECONDS."""


@dataclass
class BrokerState:
    waiting: dict[str, int]  # queue → messages waiting for a worker
    unacked: int  # delivered to a worker, not yet acknowledged (running, or held by a dead worker)
    task_ids: set[str] = field(default_factory=set)  # of every waiting or unacknowledged message

    @property
    def depth(self) -> int:
        return sum(self.waiting.values())


def lane_keys(queue: str = QUEUE) -> list[str]:
    """The Redis lists of one queue, lane 0 (served first) to the last (kombu names them with the
    `sep` of webapp/celery.py's transport options)."""
    return [queue] + [f"{queue}:{number}" for number in range(1, LANES)]


def read(with_task_ids: bool = False, queues: Iterable[str] = (QUEUE,)) -> BrokerState | None:
    """The broker's state now; None for a transport that cannot be inspected (memory://).
    Raises BrokerUnavailable."""
    url = app.conf.broker_url  # what Celery sends to (CELERY_BROKER_URL in the environment wins)
    scheme = url.split("://", 1)[0]
    if scheme in ("redis", "rediss"):
        return _read_redis(url, list(queues), with_task_ids)
    if scheme == "filesystem":
        return _read_folder(Path(app.conf.broker_transport_options["data_folder_in"]), with_task_ids)
    return None


def ping() -> bool:
    """Whether the broker answers now (always True for transports without a server)."""
    try:
        read()
        return True
    except BrokerUnavailable:
        return False


def _read_redis(url: str, queues: list[str], with_task_ids: bool) -> BrokerState:
    import redis

    client = _client(url)
    try:
        with client.pipeline(transaction=False) as pipe:
            for queue in queues:
                for key in lane_keys(queue):
                    pipe.llen(key)
            pipe.hlen(UNACKED_KEY)
            counts = pipe.execute()
        waiting = {queue: sum(counts[i * LANES:(i + 1) * LANES]) for i, queue in enumerate(queues)}
        state = BrokerState(waiting=waiting, unacked=counts[-1])
        if with_task_ids:
            for queue in queues:
                for key in lane_keys(queue):
                    state.task_ids.update(_task_id(raw) for raw in client.lrange(key, 0, -1))
            for raw in client.hvals(UNACKED_KEY):
                state.task_ids.add(_task_id(raw, unacked=True))
            state.task_ids.discard(None)
        return state
    except redis.RedisError as exc:
        raise BrokerUnavailable(f"Redis at {_redacted(url)} did not answer: {exc}") from exc


@functools.lru_cache(maxsize=8)
def _client(url: str):
    """One client (and connection pool) per URL for the process: every job submission asks
    ping(), and a batch of a hundred must not open a hundred connections."""
    import redis

    return redis.Redis.from_url(url, socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=TIMEOUT_SECONDS,
                                retry_on_timeout=False, health_check_interval=30)


def _read_folder(folder: Path, with_task_ids: bool) -> BrokerState:
    try:
        files = [path for path in folder.iterdir() if path.is_file()]
    except OSError as exc:
        raise BrokerUnavailable(f"cannot read the broker folder: {exc}") from exc
    state = BrokerState(waiting={QUEUE: len(files)}, unacked=0)
    if with_task_ids:
        for path in files:
            try:
                state.task_ids.add(_task_id(path.read_bytes()))
            except OSError:  # taken by a worker meanwhile
                continue
        state.task_ids.discard(None)
    return state


def _task_id(raw: bytes | str, unacked: bool = False) -> str | None:
    """The Celery task id in a kombu message (an unacknowledged one is stored as
    [message, exchange, routing_key])."""
    try:
        message = json.loads(raw)
        if unacked:
            message = message[0]
        return message["headers"]["id"]
    except (ValueError, KeyError, IndexError, TypeError):
        log.warning("a broker message without a readable task id; ignored")
        return None


def _redacted(url: str) -> str:
    """The URL without its password (it ends up in pages and logs)."""
    scheme, _, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.rsplit("@", 1)[1]
    return f"{scheme}://{rest}"
