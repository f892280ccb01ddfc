"""Fault 1: the pool process running a job is SIGKILLed mid-job (as the kernel's OOM killer does).
The message comes back (acks_late + reject_on_worker_lost), the same worker takes the job over and
resumes it from its last checkpoint, and it succeeds once: attempts 2, one result file."""

from __future__ import annotations

import re

import pytest

from tests.processes import finished, result_files, wait_for_job
from webapp.models import StyleJob

pytestmark = pytest.mark.django_db(transaction=True)

Status = StyleJob.Status


def test_a_job_whose_pool_process_is_killed_resumes_from_its_checkpoint_and_succeeds_once(
        redis, worker_factory, submit, worker_media):
    worker = worker_factory("killed", redis.url)
    job = submit(iterations=50)
    row = wait_for_job(job, lambda r: r.status == Status.RUNNING and r.checkpoint.name and r.step >= 5, worker)
    assert row.worker_host == worker.node
    assert len(worker.kill_child()) == 1, worker.tail()  # the one pool process (-c 1), running the job

    second_attempt: list[StyleJob] = []
    row = wait_for_job(job, finished, worker, seen=second_attempt)
    assert row.status == Status.SUCCEEDED, worker.tail()
    assert row.attempts == 2, worker.tail()
    resumed = re.search(rf"job {job.pk}: resuming from its checkpoint \(scale 0, iteration (\d+)\)", worker.log())
    assert resumed and int(resumed[1]) >= 1, worker.tail()
    # Had it started over, its progress would have gone back below the checkpoint's iteration.
    steps = [r.step for r in second_attempt if r.attempts == 2 and r.status == Status.RUNNING]
    assert min(steps, default=int(resumed[1])) >= int(resumed[1]), (steps, worker.tail())
    assert [p["step"] for p in row.loss_history][-1] == 50
    assert result_files(worker_media, job) == ["result.png"]
    assert worker.log().count(f"job {job.pk} claimed by") == 2
