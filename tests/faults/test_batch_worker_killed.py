"""Fault 1 for a batch (WORKER_BATCH_SIZE 3): the pool process running three jobs in one batch is
SIGKILLed. The batch's message comes back, takes all three over and each resumes from its own
checkpoint; every job succeeds once. The jobs' own messages, delivered too, run nothing."""

from __future__ import annotations

import pytest
from django.db import transaction

from tests.processes import finished, result_files, wait_for_job, wait_until
from webapp.models import StyleJob

pytestmark = pytest.mark.django_db(transaction=True)

Status = StyleJob.Status


def test_a_killed_batch_is_taken_over_as_a_whole_and_each_job_succeeds_once(
        redis, worker_factory, submit, worker_media):
    worker = worker_factory("batch", redis.url, WORKER_BATCH_SIZE="3")
    with transaction.atomic():  # all three queued before the worker hears of the first
        jobs = [submit(iterations=60, seed=seed) for seed in (1, 2, 3)]
    for job in jobs:
        wait_for_job(job, lambda r: r.status == Status.RUNNING and r.checkpoint.name and r.step >= 5, worker)
    assert "running 3 jobs in one batch" in worker.log(), worker.tail()
    assert len({StyleJob.objects.get(pk=j.pk).task_id for j in jobs}) == 1  # the first one's message
    assert len(worker.kill_child()) == 1, worker.tail()

    for job in jobs:
        row = wait_for_job(job, finished, worker)
        assert (row.status, row.attempts) == (Status.SUCCEEDED, 2), worker.tail()
        assert f"job {job.pk}: resuming from its checkpoint" in worker.log(), worker.tail()
        assert [p["step"] for p in row.loss_history][-1] == 60
        assert result_files(worker_media, job) == ["result.png"]
        assert worker.log().count(f"job {job.pk} claimed by") == 2, worker.tail()
    for job in jobs[1:]:  # their own messages were delivered, and ran nothing
        wait_until(lambda job=job: f"job {job.pk} not claimed by" in worker.log(), 30, worker.tail)

