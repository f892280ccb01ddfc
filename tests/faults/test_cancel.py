"""Fault 9: cancel. A queued job that is cancelled never runs (its message, when a worker gets it,
is dropped); a running job stops within one iteration of the cancel and frees its worker for the
next job. The worker here writes its progress after every iteration, so the row's step is exact."""

from __future__ import annotations

import pytest

from tests.processes import broker_holds, finished, wait_for_job, wait_until
from webapp.jobs import lifecycle
from webapp.models import StyleJob

pytestmark = pytest.mark.django_db(transaction=True)

Status = StyleJob.Status


def test_a_cancelled_queued_job_never_runs_and_a_cancelled_running_one_stops_within_an_iteration(
        redis, worker_factory, submit):
    # Every iteration written, so the step seen when asking is exact (the flag is read after every
    # iteration whatever PROGRESS_EVERY_SECONDS is).
    worker = worker_factory("cancelling", redis.url, PROGRESS_EVERY_SECONDS="0")
    running = submit(iterations=2000)  # minutes, were it not cancelled
    queued = submit(iterations=3)
    wait_for_job(running, lambda r: r.status == Status.RUNNING and r.step >= 3, worker)
    assert lifecycle.cancel(StyleJob.objects.get(pk=queued.pk)) == Status.CANCELLED

    step_when_asked = StyleJob.objects.get(pk=running.pk).step
    assert lifecycle.cancel(StyleJob.objects.get(pk=running.pk)) == Status.RUNNING  # asked; it stops itself
    row = wait_for_job(running, finished, worker, timeout=30)
    assert row.status == Status.CANCELLED, worker.tail()
    # One iteration after the one it was in (the row read above may be one write behind).
    assert row.step <= step_when_asked + 2, (step_when_asked, row.step)
    assert not row.result.name

    # The cancelled queued job's message reaches the worker next, and is dropped.
    wait_until(lambda: f"job {queued.pk} not claimed by" in worker.log(), 30, worker.tail)
    row = StyleJob.objects.get(pk=queued.pk)
    assert (row.status, row.attempts, row.started) == (Status.CANCELLED, 0, None)
    assert f"job {queued.pk} claimed by" not in worker.log()

    after = submit(iterations=2)
    assert wait_for_job(after, finished, worker).status == Status.SUCCEEDED, worker.tail()
    wait_until(lambda: broker_holds() is None, 10, broker_holds)
