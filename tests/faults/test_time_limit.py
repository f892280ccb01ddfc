"""Fault 4: time limits. Past the soft limit a job fails cleanly as timed out. A job that cannot be
stopped that way (stuck where no Python runs, inside a driver call; here the test SIGSTOPs its
pool process, so the soft limit's exception is never raised) is killed at the hard limit: failed as
timed out, not delivered again, and the worker runs the next job."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.processes import broker_holds, finished, wait_for_job, wait_until
from webapp.models import StyleJob

pytestmark = pytest.mark.django_db(transaction=True)

Status = StyleJob.Status
LIMITS = {"JOB_SOFT_TIME_LIMIT": "12", "JOB_HARD_TIME_LIMIT": "14"}  # s; a tiny job takes 5-7 here
# The job writes its first report at once and nothing more within the test (the cancel check
# reads). A pool process SIGSTOPped in the middle of a write would keep SQLite's write lock
# until it is killed, and Celery calls on_failure (which records the failure) before it kills the
# process: the record would wait out the busy timeout and fail (PostgreSQL would hold the row's
# lock the same way while a write was in flight). That race needs a stop inside a write of a few
# milliseconds; this test is about the time limit, so it keeps the stop away from writes.
WRITES_ONLY_AT_THE_START = {"PROGRESS_EVERY_SECONDS": "600", "PREVIEW_EVERY_SECONDS": "600",
                            "CHECKPOINT_EVERY_SECONDS": "600", "JOB_HEARTBEAT_SECONDS": "200",
                            "STUCK_AFTER_SECONDS": "600"}


def test_a_job_past_the_soft_limit_fails_as_timed_out(redis, worker_factory, submit):
    worker = worker_factory("limited", redis.url, **LIMITS)
    job = submit(iterations=5000)
    row = wait_for_job(job, finished, worker, timeout=60)
    assert row.status == Status.FAILED, worker.tail()
    assert row.error.startswith("Took longer than the limit of 12 s; try a smaller size"), row.error
    assert row.attempts == 1


def test_a_job_stuck_past_the_hard_limit_is_killed_failed_not_redelivered_and_the_next_job_runs(
        redis, worker_factory, submit):
    worker = worker_factory("hard-limited", redis.url, **LIMITS, **WRITES_ONLY_AT_THE_START)
    job = submit(iterations=5000)
    wait_for_job(job, lambda r: r.status == Status.RUNNING and r.step >= 1, worker)
    time.sleep(1)  # past the first report's writes: from here on the pool process only reads
    [stuck] = worker.pool_pids()
    os.kill(stuck, signal.SIGSTOP)

    row = wait_for_job(job, finished, worker, timeout=60)
    assert row.status == Status.FAILED, worker.tail()
    assert row.error == "Took longer than the limit of 14 s and was stopped.", worker.tail()
    assert "Hard time limit (14" in worker.log()
    # Not delivered again: no second claim, and the queue is empty.
    wait_until(lambda: broker_holds() is None, 10, lambda: f"{broker_holds()}\n{worker.tail()}")
    time.sleep(2)
    row.refresh_from_db()
    assert (row.status, row.attempts) == (Status.FAILED, 1), worker.tail()
    assert worker.log().count(f"job {job.pk} claimed by") == 1

    after = submit(iterations=2)
    assert wait_for_job(after, finished, worker).status == Status.SUCCEEDED, worker.tail()
