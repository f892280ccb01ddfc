"""Fault 2: a poison job, one that kills the process running it every time (here the test SIGKILLs the
pool process each time the job is claimed, as a segfaulting driver or the OOM killer would). It must
end failed at the attempt cap with a clear error, leave nothing in the queue, and not take the
worker down with it."""

from __future__ import annotations

import pytest

from tests.processes import broker_holds, finished, wait_for_job, wait_until
from webapp.models import StyleJob

pytestmark = pytest.mark.django_db(transaction=True)

Status = StyleJob.Status
CAP = 2


def test_a_job_that_kills_its_worker_every_time_fails_at_the_attempt_cap_and_the_worker_goes_on(
        redis, worker_factory, submit, settings):
    settings.JOB_MAX_ATTEMPTS = CAP  # stored on the job's row when it is created
    worker = worker_factory("poisoned", redis.url)
    job = submit(iterations=2000)
    for attempt in range(1, CAP + 1):
        wait_for_job(job, lambda r: r.status == Status.RUNNING and r.attempts == attempt, worker)
        assert len(worker.kill_child()) == 1, worker.tail()

    row = wait_for_job(job, finished, worker)
    assert row.status == Status.FAILED, worker.tail()
    assert row.attempts == CAP
    assert f"Stopped after {CAP} attempts" in row.error and "worker running it was lost" in row.error
    assert [a.outcome for a in row.attempt_log.all()] == ["lost"] * CAP
    # The message that found the cap reached was acknowledged: nothing left to go round again.
    wait_until(lambda: broker_holds() is None, 10, lambda: f"{broker_holds()}\n{worker.tail()}")
    # Each claim is in the attempt log above; the worker's own log may miss the last lines a pool
    # process wrote just before it was SIGKILLed (not yet flushed), so it shows at least one.
    assert 1 <= worker.log().count(f"job {job.pk} claimed by") <= CAP

    after = submit(iterations=2)
    assert wait_for_job(after, finished, worker).status == Status.SUCCEEDED, worker.tail()
    assert worker.alive()
