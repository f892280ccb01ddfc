"""The task runs the real engine on tiny images and records every way a job can end."""

from __future__ import annotations

import io
import logging
import re

import pytest
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from django.core.files.storage import default_storage
from PIL import Image

import stylize
from webapp.jobs import lifecycle
from webapp.worker import progress, run, tasks
from webapp.models import StyleJob, WorkerHeartbeat
from webapp.worker.tasks import run_style_job

pytestmark = pytest.mark.django_db

Status = StyleJob.Status
VISUALISATIONS = {"features_relu4_2", "features_relu1_1", "features_relu2_1", "features_relu3_1", "features_relu4_1",
                  "features_relu5_1", "gram", "patches", "loss"}


@pytest.fixture(autouse=True)
def no_heartbeat_thread(settings):
    """The job's heartbeat thread writes through a connection of its own, which cannot see this
    test's uncommitted rows (tests/webapp/test_job_heartbeat.py tests it, committed)."""
    settings.JOB_HEARTBEAT_SECONDS = 3600


def reload(job: StyleJob) -> StyleJob:
    return StyleJob.objects.get(pk=job.pk)


def read_bytes(name: str) -> bytes:
    with default_storage.open(name, "rb") as f:
        return f.read()


def run_message(job: StyleJob) -> str:
    """Run the task as a worker would, in this process."""
    return run_style_job.apply(args=[str(job.id)], task_id=job.task_id).get()


def test_a_job_runs_to_success_with_a_result_that_can_reproduce_it(queued_job):
    assert run_message(queued_job) == Status.SUCCEEDED
    job = reload(queued_job)
    assert (job.status, job.progress, job.step, job.total_steps) == (Status.SUCCEEDED, 1.0, 4, 4)
    assert job.result.name == f"results/{job.id}/result.png"
    metadata = stylize.read_metadata(io.BytesIO(read_bytes(job.result.name)))
    assert metadata["params"]["size"] == 48 and metadata["seed"] == job.seed == 7
    assert metadata["engine_version"] == job.engine_version == stylize.__version__
    assert metadata["weights_sha256"] == job.weights_sha256 and len(job.weights_sha256) == 64
    assert max(Image.open(io.BytesIO(read_bytes(job.result.name))).size) == 48
    assert [p["step"] for p in job.loss_history] == [1, 2, 3, 4]
    assert (job.device, job.worker_host, job.attempts) != ("", "", 0)
    assert not job.checkpoint.name and job.finished >= job.started
    heartbeat = WorkerHeartbeat.objects.get(name=job.worker_host)
    assert heartbeat.current_job is None and heartbeat.device.startswith("CPU, ")  # idle again, device remembered


def test_the_visualisations_are_stored_with_the_result(queued_job):
    run_message(queued_job)
    artifacts = list(reload(queued_job).artifacts.all())
    assert {a.name for a in artifacts} == VISUALISATIONS
    for artifact in artifacts:
        assert artifact.file.name == f"results/{queued_job.id}/{artifact.name}.png"
        assert Image.open(io.BytesIO(read_bytes(artifact.file.name))).width > 0


def test_a_message_for_a_job_that_is_not_queued_does_nothing(queued_job):
    lifecycle.cancel(queued_job)
    assert run_message(queued_job) == "not claimed"
    assert reload(queued_job).status == Status.CANCELLED


def test_running_out_of_memory_fails_the_job_with_a_size_that_fits_and_no_retry(queued_job, monkeypatch):
    monkeypatch.setenv("STYLIZE_SIMULATE_OOM_PIXELS", "100")  # the engine's test hook
    assert run_message(queued_job) == Status.FAILED
    job = reload(queued_job)
    assert job.attempts == 1
    assert "Out of host memory" in job.error and "should fit" in job.error


def test_a_job_cancelled_while_running_ends_cancelled_without_a_result(queued_job):
    job = lifecycle.claim(queued_job.id, "w")
    lifecycle.cancel(job)
    assert run.execute(job) == Status.CANCELLED
    job = reload(job)
    assert job.status == Status.CANCELLED and not job.result.name and job.step == 1


def test_params_that_no_longer_validate_fail_the_job_with_the_reason(queued_job):
    StyleJob.objects.filter(pk=queued_job.pk).update(params={**queued_job.params, "optimizer": "sgd"})
    assert run_message(queued_job) == Status.FAILED
    assert "optimizer: must be one of lbfgs, adam" in reload(queued_job).error


def test_the_soft_time_limit_fails_the_job_as_timed_out(queued_job, monkeypatch):
    monkeypatch.setattr(stylize, "run", lambda *a, **k: (_ for _ in ()).throw(SoftTimeLimitExceeded()))
    assert run_message(queued_job) == Status.FAILED
    assert "Took longer than the limit" in reload(queued_job).error


def test_the_hard_time_limit_fails_the_job_from_the_workers_parent_process(queued_job, monkeypatch):
    monkeypatch.setattr(tasks.connections, "close_all", lambda: None)  # would close the test's transaction
    job = lifecycle.claim(queued_job.id, "w", task_id=queued_job.task_id)
    run_style_job.on_failure(TimeLimitExceeded(60), job.task_id, (str(job.id),), {}, None)
    job = reload(job)
    assert job.status == Status.FAILED and "was stopped" in job.error


def test_an_unexpected_error_fails_the_job_with_a_plain_message_and_its_traceback_for_the_admin(
        queued_job, monkeypatch):
    def broken(*args, **kwargs):
        raise KeyError("/srv/app/secret/path.py")

    monkeypatch.setattr(stylize, "run", broken)
    assert run_message(queued_job) == Status.FAILED
    job = reload(queued_job)
    assert job.error == "Internal error while running the job. The details are kept for the administrators."
    assert "Traceback" in job.error_traceback and "broken" in job.error_traceback
    assert "KeyError" in job.error_traceback and "/srv/app/secret/path.py" in job.error_traceback


@pytest.mark.parametrize("error", [OSError(2, "No such file or directory", "/data/media/uploads/x.png"),
                                   stylize.ImageError("cannot open /data/media/uploads/x.png: gone"),
                                   stylize.WeightsError("VGG19 state-dict file /opt/weights.pth does not exist.")],
                         ids=["os-error", "image-error", "weights-error"])
def test_a_failed_job_shows_its_owner_no_path_and_no_exception_but_keeps_them_for_the_admin(
        queued_job, monkeypatch, sent, error):
    def broken(*args, **kwargs):
        raise error

    monkeypatch.setattr(stylize, "run", broken)
    queued_job.max_attempts = 1  # an OSError would be retried otherwise
    StyleJob.objects.filter(pk=queued_job.pk).update(max_attempts=1)
    run_message(queued_job)
    job = reload(queued_job)
    assert job.status == Status.FAILED and job.error
    assert "/" not in job.error and type(error).__name__ not in job.error and "Errno" not in job.error
    assert "/data/media/uploads/x.png" in job.error_traceback or "/opt/weights.pth" in job.error_traceback


def test_a_storage_error_queues_the_job_again(queued_job, monkeypatch, sent):
    def unreachable(*args, **kwargs):
        raise ConnectionError("storage unreachable")

    monkeypatch.setattr(run.storage, "open_image", unreachable)
    assert run_message(queued_job) == Status.QUEUED
    assert reload(queued_job).error.startswith("A stored file could not be read or written.")


class WorkerDied(BaseException):
    """Stands for the worker process being killed: nothing in the task can catch it."""


def test_a_job_whose_worker_died_resumes_from_its_checkpoint_to_the_same_result(
        user, content, style, sent, settings, monkeypatch, caplog, django_capture_on_commit_callbacks):
    settings.CHECKPOINT_EVERY_SECONDS = 0  # a checkpoint with every report
    # Adam: its moments travel with a checkpoint, so the resumed result is the same bit for bit
    # (an L-BFGS checkpoint leaves its curvature pairs behind: tests/stylize/test_checkpoint.py).
    params = {"size": 48, "scales": 1, "iterations": 6, "seed": 11, "optimizer": "adam", "learning_rate": 0.05}
    with django_capture_on_commit_callbacks(execute=True):
        reference = lifecycle.create_job(user, content, [style], params)
        interrupted = lifecycle.create_job(user, content, [style], params)
    run_message(reference)

    report = progress.JobProgress.__call__

    def dies_after_step_3(self, p):
        report(self, p)
        if p.step == 3 and self.job.attempts == 1:
            raise WorkerDied()

    monkeypatch.setattr(progress.JobProgress, "__call__", dies_after_step_3)
    with pytest.raises(WorkerDied):
        run_message(interrupted)
    assert reload(interrupted).status == Status.RUNNING and reload(interrupted).checkpoint.name

    with caplog.at_level(logging.INFO, logger="webapp.worker.run"), django_capture_on_commit_callbacks(execute=True):
        assert run_message(interrupted) == Status.SUCCEEDED  # the same message, delivered again
    # The checkpoint of step 3 may still have been uploading (off the run's path) when it died.
    resumed = re.search(r"resuming from its checkpoint \(scale 0, iteration (\d)\)", caplog.text)
    assert resumed and 1 <= int(resumed[1]) <= 3, caplog.text
    job = reload(interrupted)
    assert job.attempts == 2
    assert [p["step"] for p in job.loss_history] == [1, 2, 3, 4, 5, 6]
    same = (Image.open(io.BytesIO(read_bytes(job.result.name))).tobytes()
            == Image.open(io.BytesIO(read_bytes(reload(reference).result.name))).tobytes())
    assert same
    assert not default_storage.listdir(f"checkpoints/{job.id}")[1]  # deleted once finished
