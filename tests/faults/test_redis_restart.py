"""Fault 6: Redis is SIGKILLed while 20 jobs are queued and one runs, and restarted on the same port
from its append-only file (appendfsync always: every acknowledged write was on disk). The worker
reconnects by itself and all 20 jobs finish, each once."""

from __future__ import annotations

import time

import pytest

from tests.processes import broker_holds, wait_for_job, wait_until
from webapp.models import StyleJob

pytestmark = pytest.mark.django_db(transaction=True)

Status = StyleJob.Status
JOBS = 20


def test_all_queued_jobs_finish_after_redis_is_killed_and_restarted_from_its_aof(
        redis_factory, send_to, worker_factory, submit, settings):
    settings.JOBS_PER_USER = JOBS
    redis = redis_factory(appendonly=True)
    send_to(redis.url)
    # A job that ends while Redis is away cannot be acknowledged; its message comes back after the
    # visibility timeout (shortened here) and is dropped, the job being done: the queue empties.
    worker = worker_factory("reconnecting", redis.url, BROKER_VISIBILITY_TIMEOUT="8", BROKER_RESTORE_EVERY_SECONDS="1")
    queued = [submit(iterations=2) for _ in range(JOBS)]
    wait_for_job(queued[0], lambda r: r.status == Status.RUNNING, worker)

    redis.kill()
    time.sleep(3)  # the worker notices, and retries while Redis is away
    redis.start()

    rows = [wait_for_job(job, lambda r: r.is_finished, worker, timeout=240) for job in queued]
    assert [row.status for row in rows] == [Status.SUCCEEDED] * JOBS, worker.tail()
    assert all(row.attempts == 1 for row in rows), [(row.pk, row.attempts) for row in rows]
    assert all(worker.log().count(f"job {row.pk} claimed by") == 1 for row in rows), worker.tail()
    assert worker.alive(), worker.tail()  # the same worker process, reconnected
    assert worker.log().count("Connected to redis") >= 2, worker.tail()
    wait_until(lambda: broker_holds() is None, 30, broker_holds)
