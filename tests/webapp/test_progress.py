"""The progress callback: throttled writes, previews and checkpoints, heartbeats, cancel."""

from __future__ import annotations

import dataclasses
import os

import pytest
from django.core.files.storage import default_storage
from PIL import Image

import stylize
from webapp.jobs import lifecycle
from webapp.models import StyleJob, WorkerHeartbeat
from webapp.worker.progress import JobProgress, LossHistory

pytestmark = pytest.mark.django_db


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeCheckpoint:
    def to_bytes(self) -> bytes:
        return b"checkpoint"


def progress_at(step: int, total: int = 100, loss: float = 10.0) -> stylize.Progress:
    return stylize.Progress(
        scale=0, num_scales=1, size=(48, 32), iteration=step, iterations=total, step=step, total_steps=total,
        loss=loss, losses={"content:relu4_2": loss / 2, "style:relu1_1": loss / 2}, elapsed=step * 0.1,
        eta=(total - step) * 0.1, preview_factory=lambda: Image.new("RGB", (48, 32), (step % 256, 0, 0)),
        checkpoint_factory=FakeCheckpoint)


@pytest.fixture
def running_job(queued_job) -> StyleJob:
    return lifecycle.claim(queued_job.id, "gpu0@host")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def throttled(settings):
    settings.PROGRESS_EVERY_SECONDS = 1.0
    settings.PREVIEW_EVERY_SECONDS = 5.0
    settings.CHECKPOINT_EVERY_SECONDS = 30.0


def test_the_first_report_is_written_at_once_with_a_preview(running_job, clock, throttled):
    JobProgress(running_job, clock=clock)(progress_at(1))
    job = StyleJob.objects.get(pk=running_job.pk)
    assert (job.step, job.total_steps, job.progress) == (1, 100, 0.01)
    assert job.loss_history[0]["losses"] == {"content:relu4_2": 5.0, "style:relu1_1": 5.0}
    assert job.preview.name and default_storage.exists(job.preview.name)
    assert job.device.startswith("CPU, ")  # this machine has no GPU
    assert not job.checkpoint.name  # the first checkpoint waits a full interval


def test_writes_are_throttled_to_one_per_interval(running_job, clock, throttled):
    reporter = JobProgress(running_job, clock=clock)
    reporter(progress_at(1))
    for step in range(2, 50):  # fifty iterations within half a second: no more writes
        clock.now += 0.01
        reporter(progress_at(step))
    assert reporter.writes == 1
    clock.now += 1.0
    reporter(progress_at(50))
    assert reporter.writes == 2
    assert StyleJob.objects.get(pk=running_job.pk).step == 50


def test_previews_and_checkpoints_follow_their_own_intervals_and_replace_the_old_files(running_job, clock,
                                                                                       throttled):
    reporter = JobProgress(running_job, clock=clock)
    reporter(progress_at(1))
    first_preview = StyleJob.objects.get(pk=running_job.pk).preview.name
    clock.now += 5.0
    reporter(progress_at(2))
    job = StyleJob.objects.get(pk=running_job.pk)
    assert job.preview.name != first_preview
    assert not default_storage.exists(first_preview) and default_storage.exists(job.preview.name)
    clock.now += 30.0
    reporter(progress_at(3))  # the checkpoint is taken and uploaded by a thread of its own
    assert reporter.checkpoints.wait(timeout=30)
    reporter(progress_at(4))  # recorded with the next report
    job = StyleJob.objects.get(pk=running_job.pk)
    assert job.checkpoint.name.startswith(f"checkpoints/{job.id}/")
    with default_storage.open(job.checkpoint.name) as f:
        assert f.read() == b"checkpoint"


class SlowCheckpoint:
    """A checkpoint whose upload waits until the test lets it go."""

    def __init__(self, gate, taken: list):
        self.gate = gate
        taken.append(self)

    def to_bytes(self) -> bytes:
        self.gate.wait(30)
        return b"slow"


def test_checkpoints_upload_off_the_run_one_at_a_time_and_the_newest_goes_next(running_job, clock, settings):
    import threading

    settings.CHECKPOINT_EVERY_SECONDS = 1.0
    gate, taken = threading.Event(), []

    def at(step):
        return dataclasses.replace(progress_at(step), checkpoint_factory=lambda: SlowCheckpoint(gate, taken))

    reporter = JobProgress(running_job, clock=clock)
    clock.now += 1.0
    reporter(at(1))  # takes a snapshot; its upload hangs
    for step in range(2, 6):  # the run goes on, and takes no second snapshot while one is in flight
        clock.now += 1.0
        reporter(at(step))
    assert len(taken) == 1 and not StyleJob.objects.get(pk=running_job.pk).checkpoint.name
    gate.set()
    assert reporter.checkpoints.wait(timeout=30)
    clock.now += 1.0
    reporter(at(6))  # the upload is recorded, and the newest state is snapshotted at once
    assert len(taken) == 2
    assert StyleJob.objects.get(pk=running_job.pk).checkpoint.name.startswith(f"checkpoints/{running_job.id}/")
    reporter.checkpoints.wait(timeout=30)
    reporter.checkpoints.close()  # the run is over: a stored but unrecorded checkpoint is deleted
    names = default_storage.listdir(f"checkpoints/{running_job.id}")[1]
    assert len(names) == 1


def test_the_last_step_is_always_written(running_job, clock, throttled):
    reporter = JobProgress(running_job, clock=clock)
    reporter(progress_at(1, total=3))
    reporter(progress_at(2, total=3))
    reporter(progress_at(3, total=3))
    job = StyleJob.objects.get(pk=running_job.pk)
    assert (job.step, job.progress) == (3, 1.0)
    assert [p["step"] for p in job.loss_history] == [1, 2, 3]


def test_each_write_is_a_heartbeat_naming_the_worker_and_its_device(running_job, clock, throttled):
    JobProgress(running_job, clock=clock)(progress_at(1))
    heartbeat = WorkerHeartbeat.objects.get(name="gpu0@host")
    assert heartbeat.current_job_id == running_job.pk and heartbeat.device.startswith("CPU, ")
    assert heartbeat.pid == os.getppid()  # the worker's main process, not the pool process
    assert 0 < heartbeat.device_memory_used_bytes < heartbeat.device_memory_bytes  # host memory here


def test_a_cancel_request_stops_the_run_after_the_next_iteration_between_writes(running_job, clock, throttled):
    reporter = JobProgress(running_job, clock=clock)
    reporter(progress_at(1))
    lifecycle.cancel(running_job)
    clock.now += 0.1  # long before the next progress write
    with pytest.raises(stylize.Cancelled):
        reporter(progress_at(2))
    assert StyleJob.objects.get(pk=running_job.pk).step == 1  # no write was needed to notice


def test_the_cancel_check_can_be_throttled(running_job, clock, throttled, settings):
    settings.CANCEL_CHECK_EVERY_SECONDS = 0.5
    reporter = JobProgress(running_job, clock=clock)
    reporter(progress_at(1))
    lifecycle.cancel(running_job)
    clock.now += 0.2
    reporter(progress_at(2))  # not checked yet
    clock.now += 0.3
    with pytest.raises(stylize.Cancelled):
        reporter(progress_at(3))


def test_a_worker_whose_claim_was_taken_over_stops_and_leaves_no_files(running_job, clock, throttled):
    reporter = JobProgress(running_job, clock=clock)
    reporter(progress_at(1))
    lifecycle.claim(running_job.id, "gpu0@host", task_id=running_job.task_id)  # the message came back
    clock.now += 5.0
    with pytest.raises(lifecycle.JobSuperseded):
        reporter(progress_at(2))
    previews = default_storage.listdir(f"results/{running_job.id}")[1]
    assert len(previews) == 1  # the first one only


def test_nan_losses_are_stored_as_null():
    history = LossHistory([{"step": 1, "scale": 0, "loss": float("nan"), "losses": {"tv": float("inf")}}])
    assert history.as_list() == [{"step": 1, "scale": 0, "loss": None, "losses": {"tv": None}}]


def test_the_loss_history_is_thinned_but_keeps_its_whole_span():
    history = LossHistory(max_points=10)
    for step in range(1, 1001):
        history.add({"step": step, "scale": 0, "loss": 1000.0 / step, "losses": {}})
    points = history.as_list()
    assert len(points) <= 11
    assert points[0]["step"] <= 128 and points[-1]["step"] == 1000
    steps = [p["step"] for p in points]
    assert steps == sorted(steps)


def test_loss_values_are_rounded_to_five_significant_digits():
    history = LossHistory([{"step": 1, "scale": 0, "loss": 1.234567891, "losses": {"tv": 0.000123456789}}])
    assert history.as_list()[0]["loss"] == 1.2346
    assert history.as_list()[0]["losses"]["tv"] == 0.00012346
