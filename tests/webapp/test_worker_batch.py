"""WORKER_BATCH_SIZE: a message's job takes compatible queued jobs into one batch (webapp/worker/
batching.py), each ends as it would alone; the real engine on tiny images, run as a worker would
run a message (in this process; tests/faults/test_batch_worker_killed.py does it with real workers)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from celery.exceptions import TimeLimitExceeded
from django.core.files.storage import default_storage
from PIL import Image

from webapp.jobs import cost, lifecycle
from webapp.models import JobAttempt, StyleJob
from webapp.worker import progress, tasks
from webapp.worker.tasks import run_style_job

pytestmark = pytest.mark.django_db

Status = StyleJob.Status
# A batched job's pixels against the same job alone: stacked images round their convolutions
# differently in the last bits (tests/stylize/test_batch.py argues the bound); 4 iterations here.
MAX_LEVELS, MEAN_LEVELS = 6, 0.25


@pytest.fixture(autouse=True)
def batches_of_three(settings):
    settings.WORKER_BATCH_SIZE = 3
    settings.JOBS_PER_USER = 20
    # The heartbeat thread's connection cannot see this test's uncommitted rows (tests/webapp/test_task.py).
    settings.JOB_HEARTBEAT_SECONDS = 3600


def reload(job: StyleJob) -> StyleJob:
    return StyleJob.objects.get(pk=job.pk)


def run_message(job: StyleJob) -> str:
    return run_style_job.apply(args=[str(job.id)], task_id=job.task_id).get()


def pixels(job: StyleJob) -> np.ndarray:
    with default_storage.open(reload(job).result.name, "rb") as f:
        return np.asarray(Image.open(io.BytesIO(f.read())).convert("RGB")).astype(np.int16)


def test_compatible_queued_jobs_run_in_the_first_ones_batch_each_as_it_would_alone(make_job, second_style, settings):
    lead, partner, third = make_job(), make_job(styles=[second_style]), make_job()
    StyleJob.objects.filter(pk=third.pk).update(params={**third.params, "seed": 99, "content_weight": 3.0})
    assert run_message(lead) == Status.SUCCEEDED
    rows = [reload(j) for j in (lead, partner, third)]
    assert [r.status for r in rows] == [Status.SUCCEEDED] * 3
    assert {r.task_id for r in rows} == {lead.task_id}  # all three were run by the lead's message
    assert all(r.attempts == 1 and r.step == 4 and r.artifacts.count() == 9 for r in rows)
    # Their own messages, arriving later, find nothing to run.
    assert run_message(partner) == "not claimed" and run_message(third) == "not claimed"

    settings.WORKER_BATCH_SIZE = 1
    alone = [make_job(), make_job(styles=[second_style]), make_job()]
    StyleJob.objects.filter(pk=alone[2].pk).update(params=reload(third).params)
    for job in alone:
        assert run_message(job) == Status.SUCCEEDED
        assert reload(job).task_id == job.task_id
    for batched, single in zip(rows, alone):
        difference = np.abs(pixels(batched) - pixels(single))
        assert difference.max() <= MAX_LEVELS and difference.mean() <= MEAN_LEVELS
    # And they are three different results: a mix-up of styles or weights would show.
    assert np.abs(pixels(lead) - pixels(partner)).mean() > 5 * MEAN_LEVELS
    assert np.abs(pixels(lead) - pixels(third)).mean() > 5 * MEAN_LEVELS


def test_with_a_batch_size_of_one_each_job_waits_for_its_own_message(make_job, settings):
    settings.WORKER_BATCH_SIZE = 1
    first, second = make_job(), make_job()
    assert run_message(first) == Status.SUCCEEDED
    assert reload(second).status == Status.QUEUED


def test_only_jobs_of_the_same_sizes_and_schedule_join_and_no_more_than_the_batch_size(
        make_job, tiny_params, user, content, style, sent, django_capture_on_commit_callbacks):
    lead = make_job()
    with django_capture_on_commit_callbacks(execute=True):
        larger = lifecycle.create_job(user, content, [style], {**tiny_params, "size": 40})
        longer = lifecycle.create_job(user, content, [style], {**tiny_params, "iterations": 5})
    same = [make_job(), make_job(), make_job()]
    assert run_message(lead) == Status.SUCCEEDED
    assert [reload(j).status for j in (larger, longer)] == [Status.QUEUED] * 2
    # Two partners (WORKER_BATCH_SIZE 3), the oldest first; the third waits for its message.
    assert [reload(j).status for j in same] == [Status.SUCCEEDED, Status.SUCCEEDED, Status.QUEUED]


def test_a_batch_costs_no_more_than_one_job_may(make_job, settings):
    lead, other = make_job(), make_job()
    one = cost.estimate(lead.config(), 1)
    settings.JOB_COST_BUDGET = 1.5 * one / cost.reference_cost()  # room for one tiny job and a half
    assert run_message(lead) == Status.SUCCEEDED
    assert reload(other).status == Status.QUEUED


def test_a_partner_whose_image_cannot_be_read_fails_alone(make_job, user, upload):
    broken_style = upload(user, (200, 40, 40))
    lead, broken, fine = make_job(), make_job(styles=[broken_style]), make_job()
    with default_storage.open(broken_style.file.name, "wb") as f:
        f.write(b"not an image any more")
    assert run_message(lead) == Status.SUCCEEDED
    assert reload(fine).status == Status.SUCCEEDED
    row = reload(broken)
    assert row.status == Status.FAILED and row.error == "One of the job's images could not be read when it ran."


def test_cancelling_one_job_of_a_batch_stops_it_alone(make_job, monkeypatch):
    lead, cancelled, fine = make_job(), make_job(), make_job()
    report = progress.JobProgress.__call__

    def cancel_at_step_2(self, p):
        if self.job.pk == cancelled.pk and p.step == 2:
            lifecycle.cancel(reload(cancelled))
        report(self, p)

    monkeypatch.setattr(progress.JobProgress, "__call__", cancel_at_step_2)
    assert run_message(lead) == Status.SUCCEEDED
    row = reload(cancelled)
    assert row.status == Status.CANCELLED and row.step < 4 and not row.result.name  # stopped at step 2
    assert [(reload(j).status, reload(j).step) for j in (lead, fine)] == [(Status.SUCCEEDED, 4)] * 2


def test_out_of_memory_in_the_shared_pass_runs_each_job_again_alone(make_job, monkeypatch, caplog):
    jobs = [make_job(), make_job(), make_job()]
    content = jobs[0].content  # 48 px on its long side, as the jobs' size: no resize
    # The engine's test hook: more pixels than two jobs' at once do not fit.
    monkeypatch.setenv("STYLIZE_SIMULATE_OOM_PIXELS", str(2 * content.width * content.height))
    assert run_message(jobs[0]) == Status.SUCCEEDED
    assert [reload(j).status for j in jobs] == [Status.SUCCEEDED] * 3
    assert caplog.text.count("out of memory in a batch of 3; running it alone") == 3


class WorkerDied(BaseException):
    """Stands for the worker process being killed: nothing in the task can catch it."""


def test_the_message_of_a_batch_whose_worker_died_takes_every_job_over(make_job, monkeypatch, settings):
    settings.CHECKPOINT_EVERY_SECONDS = 0
    jobs = [make_job(), make_job(), make_job()]
    report = progress.JobProgress.__call__

    def dies_at_step_3(self, p):
        report(self, p)
        if p.step == 3 and self.job.attempts == 1 and self.job.pk == jobs[2].pk:
            raise WorkerDied()

    monkeypatch.setattr(progress.JobProgress, "__call__", dies_at_step_3)
    with pytest.raises(WorkerDied):
        run_message(jobs[0])
    assert [reload(j).status for j in jobs] == [Status.RUNNING] * 3
    settings.WORKER_BATCH_SIZE = 1  # the takeover does not depend on the setting
    assert run_message(jobs[0]) == Status.SUCCEEDED  # the same message, delivered again
    for job in jobs:
        row = reload(job)
        assert (row.status, row.attempts, row.step) == (Status.SUCCEEDED, 2, 4)
        assert list(JobAttempt.objects.filter(job=row).values_list("outcome", flat=True)) == ["lost", "succeeded"]


def test_the_hard_time_limit_fails_every_job_of_the_batch(make_job, monkeypatch):
    monkeypatch.setattr(tasks.connections, "close_all", lambda: None)  # would close the test's transaction
    jobs = [make_job(), make_job()]
    lead = lifecycle.claim(jobs[0].id, "w", task_id=jobs[0].task_id)
    assert lifecycle.claim_partner(jobs[1].id, "w", lead.task_id) is not None
    run_style_job.on_failure(TimeLimitExceeded(60), lead.task_id, (str(lead.id),), {}, None)
    for job in jobs:
        row = reload(job)
        assert row.status == Status.FAILED and "was stopped" in row.error


def test_a_job_with_a_checkpoint_is_not_taken_into_a_batch(make_job):
    lead, resuming = make_job(), make_job()
    StyleJob.objects.filter(pk=resuming.pk).update(checkpoint=f"checkpoints/{resuming.pk}/c.pt")
    assert run_message(lead) == Status.SUCCEEDED
    assert reload(resuming).status == Status.QUEUED
