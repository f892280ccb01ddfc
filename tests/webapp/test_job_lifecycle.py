"""The lifecycle: claims are exclusive, attempts are capped, cancel and requeue do what they say."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from webapp.jobs import lifecycle
from webapp.models import StyleJob

pytestmark = pytest.mark.django_db

Status = StyleJob.Status


def reload(job: StyleJob) -> StyleJob:
    return StyleJob.objects.get(pk=job.pk)


def make_silent(job: StyleJob, seconds: float = 3600) -> None:
    StyleJob.objects.filter(pk=job.pk).update(last_heartbeat=timezone.now() - timedelta(seconds=seconds))


def test_a_claim_marks_the_job_running_for_that_worker(queued_job):
    job = lifecycle.claim(queued_job.id, "gpu0@host", task_id=queued_job.task_id)
    assert job.status == Status.RUNNING
    assert (job.attempts, job.worker_host) == (1, "gpu0@host")
    assert job.started is not None and job.last_heartbeat is not None


def test_of_two_claims_only_one_wins(queued_job):
    first = lifecycle.claim(queued_job.id, "gpu0@host")
    second = lifecycle.claim(queued_job.id, "gpu1@host")
    assert first is not None and second is None
    assert reload(queued_job).worker_host == "gpu0@host"


def test_only_the_message_the_job_names_may_claim_it(queued_job):
    assert lifecycle.claim(queued_job.id, "gpu0@host", task_id="some-stale-message") is None
    assert reload(queued_job).status == Status.QUEUED


def test_the_same_message_back_at_its_node_takes_over_a_job_whose_pool_process_died(queued_job):
    lost = lifecycle.claim(queued_job.id, "gpu0@host", task_id=queued_job.task_id)
    again = lifecycle.claim(queued_job.id, "gpu0@host", task_id=queued_job.task_id)  # reject_on_worker_lost
    assert again is not None and again.attempts == 2 and again.worker_host == "gpu0@host"
    # The first attempt, were it still alive, finds its claim gone.
    assert lifecycle.report_progress(lost, {"progress": 0.5}) is False
    assert lifecycle.report_progress(again, {"progress": 0.5}) is True


def test_the_same_message_at_another_node_leaves_a_job_whose_worker_still_reports(queued_job):
    running = lifecycle.claim(queued_job.id, "gpu0@host", task_id=queued_job.task_id)
    # Redis re-delivers an unacknowledged message after visibility_timeout, even to another node.
    assert lifecycle.claim(queued_job.id, "gpu1@host", task_id=queued_job.task_id) is None
    job = reload(queued_job)
    assert (job.status, job.attempts, job.worker_host) == (Status.RUNNING, 1, "gpu0@host")
    assert lifecycle.report_progress(running, {"progress": 0.5}) is True


def test_the_same_message_at_another_node_takes_over_once_the_worker_is_silent(queued_job):
    lost = lifecycle.claim(queued_job.id, "gpu0@host", task_id=queued_job.task_id)
    make_silent(queued_job)
    again = lifecycle.claim(queued_job.id, "gpu1@host", task_id=queued_job.task_id)
    assert again is not None and again.attempts == 2 and again.worker_host == "gpu1@host"
    assert lifecycle.report_progress(lost, {"progress": 0.5}) is False


def test_a_job_out_of_attempts_is_failed_instead_of_claimed(queued_job):
    for attempt in range(queued_job.max_attempts):
        assert lifecycle.claim(queued_job.id, "gpu0@host", task_id=queued_job.task_id) is not None
    assert lifecycle.claim(queued_job.id, "gpu0@host", task_id=queued_job.task_id) is None
    job = reload(queued_job)
    assert job.status == Status.FAILED
    assert job.attempts == job.max_attempts == 3
    assert "Stopped after 3 attempts" in job.error


def test_a_message_with_something_else_than_a_job_id_is_ignored():
    assert lifecycle.claim("../../etc/passwd", "w") is None


def test_progress_is_recorded_only_while_running(queued_job):
    assert lifecycle.report_progress(queued_job, {"progress": 0.5}) is False
    job = lifecycle.claim(queued_job.id, "w")
    assert lifecycle.report_progress(job, {"progress": 0.25, "step": 2, "total_steps": 8, "loss_history": [1]})
    job = reload(job)
    assert (job.progress, job.step, job.total_steps, job.loss_history) == (0.25, 2, 8, [1])


def test_report_progress_refuses_fields_that_are_not_progress(queued_job):
    job = lifecycle.claim(queued_job.id, "w")
    with pytest.raises(ValueError, match="status"):
        lifecycle.report_progress(job, {"status": "succeeded"})


def test_cancelling_a_queued_job_cancels_it_at_once(queued_job):
    assert lifecycle.cancel(queued_job) == Status.CANCELLED
    job = reload(queued_job)
    assert job.status == Status.CANCELLED and job.finished is not None
    assert lifecycle.claim(job.id, "w", task_id=job.task_id) is None  # its message, when it comes, does nothing


def test_cancelling_a_running_job_asks_its_worker_to_stop(queued_job):
    job = lifecycle.claim(queued_job.id, "w")
    assert lifecycle.should_cancel(job.id) is False
    assert lifecycle.cancel(job) == Status.RUNNING
    assert lifecycle.should_cancel(job.id) is True
    assert lifecycle.confirm_cancelled(job) is True
    assert reload(job).status == Status.CANCELLED


def test_cancelling_a_running_job_whose_worker_went_silent_cancels_it_at_once(queued_job):
    job = lifecycle.claim(queued_job.id, "w")
    make_silent(job)
    assert lifecycle.cancel(job) == Status.CANCELLED
    assert lifecycle.report_progress(job, {"progress": 0.9}) is False  # should the worker come back


def test_cancelling_twice_is_harmless_but_a_finished_job_cannot_be_cancelled(queued_job):
    lifecycle.cancel(queued_job)
    assert lifecycle.cancel(queued_job) == Status.CANCELLED
    failed = lifecycle.requeue(queued_job)
    failed = lifecycle.claim(failed.id, "w")
    lifecycle.fail(failed, "boom")
    with pytest.raises(lifecycle.JobStateError, match="already failed"):
        lifecycle.cancel(failed)


def test_a_failure_is_recorded_with_its_message_and_traceback(queued_job):
    job = lifecycle.claim(queued_job.id, "w")
    assert lifecycle.fail(job, "Out of GPU memory", "Traceback ...") == Status.FAILED
    job = reload(job)
    assert (job.status, job.error, job.error_traceback) == (Status.FAILED, "Out of GPU memory", "Traceback ...")


def test_a_retryable_failure_queues_the_job_again_with_a_new_message(queued_job, sent,
                                                                     django_capture_on_commit_callbacks):
    job = lifecycle.claim(queued_job.id, "w", task_id=queued_job.task_id)
    with django_capture_on_commit_callbacks(execute=True):
        assert lifecycle.fail(job, "storage hiccup", retryable=True) == Status.QUEUED
    requeued = reload(job)
    assert requeued.status == Status.QUEUED and requeued.task_id != queued_job.task_id
    assert sent[-1]["task_id"] == requeued.task_id and sent[-1]["countdown"] == 10
    assert lifecycle.claim(job.id, "w", task_id=queued_job.task_id) is None  # the old message is stale


def test_a_retryable_failure_on_the_last_attempt_fails(queued_job):
    StyleJob.objects.filter(pk=queued_job.pk).update(max_attempts=1)
    job = lifecycle.claim(queued_job.id, "w")
    assert lifecycle.fail(job, "storage hiccup", retryable=True) == Status.FAILED


def test_a_worker_that_lost_its_claim_cannot_record_a_failure(queued_job):
    job = lifecycle.claim(queued_job.id, "w")
    lifecycle.cancel(job)
    make_silent(job)
    lifecycle.cancel(job)
    with pytest.raises(lifecycle.JobSuperseded):
        lifecycle.fail(job, "too late")
    assert reload(job).status == Status.CANCELLED


def test_requeue_gives_a_failed_job_a_fresh_start_and_a_new_message(queued_job, sent,
                                                                    django_capture_on_commit_callbacks):
    job = lifecycle.claim(queued_job.id, "w")
    lifecycle.fail(job, "boom")
    with django_capture_on_commit_callbacks(execute=True):
        job = lifecycle.requeue(job)
    assert (job.status, job.attempts, job.error, job.finished) == (Status.QUEUED, 0, "", None)
    assert sent[-1]["task_id"] == job.task_id != queued_job.task_id
    assert lifecycle.claim(job.id, "w", task_id=job.task_id) is not None


def test_requeue_of_a_stuck_job_can_keep_its_attempts(queued_job):
    job = lifecycle.claim(queued_job.id, "w")
    make_silent(job)
    assert list(lifecycle.stuck_jobs()) == [reload(job)]
    job = lifecycle.requeue(job, reset_attempts=False)
    assert (job.status, job.attempts) == (Status.QUEUED, 1)
    assert list(lifecycle.stuck_jobs()) == []


def test_a_job_that_is_running_well_is_not_stuck_and_cannot_be_requeued(queued_job):
    job = lifecycle.claim(queued_job.id, "w")
    assert list(lifecycle.stuck_jobs()) == []
    assert list(lifecycle.stuck_jobs(threshold_seconds=-1)) == [reload(job)]
    with pytest.raises(lifecycle.JobStateError, match="this one is running"):
        lifecycle.requeue(job)


def test_a_succeeded_job_cannot_be_requeued(queued_job):
    StyleJob.objects.filter(pk=queued_job.pk).update(status=Status.SUCCEEDED)
    with pytest.raises(lifecycle.JobStateError, match="succeeded"):
        lifecycle.requeue(queued_job)
