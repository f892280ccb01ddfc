"""Fault 3: a job runs longer than Redis' visibility timeout (shortened here to 3 s, and the workers
look for overdue messages every second), so Redis hands its message to a second, idle worker while
the first still runs it. The second must not start it: the job runs exactly once."""

from __future__ import annotations

import pytest

from tests.processes import finished, wait_for_job, wait_until
from webapp.models import StyleJob

pytestmark = pytest.mark.django_db(transaction=True)

Status = StyleJob.Status
SHORT_VISIBILITY = {"BROKER_VISIBILITY_TIMEOUT": "3", "BROKER_RESTORE_EVERY_SECONDS": "1"}


def test_a_job_longer_than_the_visibility_timeout_runs_once_though_redis_hands_it_to_another_worker(
        redis, worker_factory, submit, worker_media):
    workers = [worker_factory(name, redis.url, ready=False, **SHORT_VISIBILITY) for name in ("first", "second")]
    for worker in workers:
        worker.wait_ready()
    job = submit(iterations=120)  # about 20 s here: several visibility timeouts
    row = wait_for_job(job, lambda r: r.status == Status.RUNNING, *workers)
    runner, other = workers if row.worker_host == workers[0].node else workers[::-1]
    dropped = f"job {job.pk} not claimed by {other.node}"
    wait_until(lambda: dropped in other.log(), 30,
               lambda: f"Redis did not hand the message to the idle worker:\n{other.tail()}\n{runner.tail()}")

    row = wait_for_job(job, finished, *workers)
    assert row.status == Status.SUCCEEDED, runner.tail()
    assert row.attempts == 1 and row.worker_host == runner.node
    assert runner.log().count(f"job {job.pk} claimed by") == 1
    assert f"job {job.pk} claimed by" not in other.log()
    assert [(a.number, a.worker_host, a.outcome) for a in row.attempt_log.all()] == [(1, runner.node, "succeeded")]
