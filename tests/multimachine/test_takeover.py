"""A worker's machine dies (or freezes) mid-job; a worker on another machine takes the job over once
its heartbeat has stopped for STUCK_AFTER_SECONDS, resumes from the checkpoint the first one left in
the bucket, and finishes it once: attempts 2, one result.

The thresholds are shortened (heartbeat every second, silent for 5 s means lost); production's are
10 s and 60 s (README, "Several machines")."""

from __future__ import annotations

import logging
import os
import re
import signal

import pytest

from tests.multimachine.machines import files_in
from tests.processes import finished, wait_for_job, wait_until
from webapp.jobs import dispatch, lifecycle
from webapp.models import JobAttempt, StyleJob

pytestmark = pytest.mark.django_db(transaction=True)

log = logging.getLogger(__name__)

Status = StyleJob.Status
FAST = {"JOB_HEARTBEAT_SECONDS": "1", "STUCK_AFTER_SECONDS": "5"}


# Long enough that A is still optimising when it is killed or frozen, however long B takes to
# start on a busy machine: with 60 A once finished, saved result.png and was in its visualisations
# when killed, and B's result then took another name. Cheap for B: 32 px iterations take ms.
ITERATIONS = 400


@pytest.fixture
def submit(person, images):
    def make(iterations: int) -> StyleJob:
        content, style = images
        return lifecycle.create_job(person, content, [style], {"size": 32, "scales": 1, "iterations": iterations,
                                                               "seed": 3})

    return make


def resumed_at(worker, job) -> int:
    found = re.search(rf"job {job.pk}: resuming from its checkpoint \(scale 0, iteration (\d+)\)", worker.log())
    assert found, worker.tail()
    return int(found[1])


def assert_finished_once_by(worker, job, bucket, second_attempt: list):
    row = wait_for_job(job, finished, worker, timeout=240, seen=second_attempt)
    assert row.status == Status.SUCCEEDED and row.worker_host == worker.node, worker.tail()
    assert row.attempts == 2
    start = resumed_at(worker, job)
    assert start >= 1  # from the checkpoint, not from step 0
    steps = [r.step for r in second_attempt if r.attempts == 2 and r.status == Status.RUNNING]
    assert min(steps, default=start) >= start, steps  # it never went back below the checkpoint
    results = [k for k in bucket.keys(f"{bucket.prefix}/results/{job.pk}/") if k.rsplit("/", 1)[1].startswith("result")]
    assert results == [f"{bucket.prefix}/results/{job.pk}/result.png"]
    return row


def test_a_killed_machines_job_is_requeued_and_resumed_on_another_machine_from_its_checkpoint_in_the_bucket(
        bucket, machine, reconciler, submit, media_root):
    a = machine("a", **FAST)
    sweeper = reconciler(**FAST)
    job = submit(iterations=ITERATIONS)
    row = wait_for_job(job, lambda r: r.status == Status.RUNNING and r.checkpoint.name and r.step >= 3, a)
    assert row.worker_host == a.node
    b = machine("b", **FAST)  # another machine, idle: the job is A's
    row = wait_for_job(job, lambda r: r.checkpoint.name and r.step >= 5, a, b)
    assert bucket.keys(f"{bucket.prefix}/{row.checkpoint.name}")  # A's checkpoint is in the bucket
    a.kill()  # the whole machine: main process and pool at once, nothing acknowledged or rejected
    killed_at = StyleJob.objects.values_list("last_heartbeat", flat=True).get(pk=job.pk)

    second: list[StyleJob] = []
    row = assert_finished_once_by(b, job, bucket, second)
    assert f"job {job.pk}: its worker {a.node} had been silent" in sweeper.log()
    attempts = [(t.number, t.worker_host, t.outcome) for t in row.attempt_log.all()]
    assert attempts == [(1, a.node, JobAttempt.Outcome.REQUEUED), (2, b.node, JobAttempt.Outcome.SUCCEEDED)]
    taken = row.attempt_log.get(number=2).started
    log.info("B claimed the job %.1f s after A's last heartbeat (threshold %s s)",
             (taken - killed_at).total_seconds(), FAST["STUCK_AFTER_SECONDS"])
    # The checkpoint B recorded went with the success; one that A was uploading when it was killed
    # may be left behind, with no row referring to it (the retention sweep deletes such orphans).
    wait_until(lambda: not StyleJob.objects.get(pk=job.pk).checkpoint.name, 30, "the checkpoint was kept")
    wait_until(lambda: len(bucket.keys(f"{bucket.prefix}/checkpoints/{job.pk}/")) <= 1, 30,
               lambda: f"checkpoints left: {bucket.keys(f'{bucket.prefix}/checkpoints/')}")
    for folder in (media_root, a.media_root, b.media_root, sweeper.media_root):
        assert files_in(folder) == [], folder


def test_a_message_at_another_machine_takes_over_a_frozen_machines_job_and_the_frozen_one_stops_when_it_wakes(
        bucket, machine, submit, media_root):
    a = machine("a", **FAST)
    job = submit(iterations=ITERATIONS)
    wait_for_job(job, lambda r: r.status == Status.RUNNING and r.checkpoint.name and r.step >= 3, a)
    b = machine("b", **FAST)
    row = wait_for_job(job, lambda r: r.checkpoint.name and r.step >= 5, a, b)
    os.killpg(a.process.pid, signal.SIGSTOP)  # A hangs (or its network is gone): no heartbeat, no ack
    try:
        # The message comes back to another machine (as Redis does after the visibility timeout,
        # or Celery when A's pool process dies and B is the one waiting): B must not run it while
        # A's heartbeat is fresh, nor drop it, but take the job over once the heartbeat has stopped.
        dispatch.send(str(job.pk), row.task_id, row.priority)
        second: list[StyleJob] = []
        wait_for_job(job, lambda r: r.attempts == 2 and r.worker_host == b.node, a, b, timeout=120)
        assert f"job {job.pk}: running elsewhere with a fresh heartbeat" in b.log(), b.tail()
    finally:
        os.killpg(a.process.pid, signal.SIGCONT)
    row = assert_finished_once_by(b, job, bucket, second)
    assert f"job {job.pk}: stopped, its claim was lost" in a.log(), a.tail()
    assert a.log().count(f"job {job.pk} claimed by") == 1
    assert [(t.number, t.worker_host, t.outcome) for t in row.attempt_log.all()] == [
        (1, a.node, JobAttempt.Outcome.LOST), (2, b.node, JobAttempt.Outcome.SUCCEEDED)]
    for folder in (media_root, a.media_root, b.media_root):
        assert files_in(folder) == [], folder
