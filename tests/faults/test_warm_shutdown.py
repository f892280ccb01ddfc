"""Fault 5: a warm shutdown (SIGTERM, what `docker compose stop` sends) while a job runs. The worker
finishes the job and takes no other; the queued one waits for the next worker. If the shutdown
outlasts the grace and the worker is SIGKILLed, the job is handed back: the restarted worker (same
name, as a restarted container has) gets its message again and resumes it. Never lost."""

from __future__ import annotations

import re

import pytest

from tests.processes import broker_holds, finished, running_at_step, wait_for_job, wait_until
from webapp.models import StyleJob

pytestmark = pytest.mark.django_db(transaction=True)

Status = StyleJob.Status


def test_a_warm_shutdown_finishes_the_running_job_and_leaves_the_queued_one_for_the_next_worker(
        redis, worker_factory, submit):
    worker = worker_factory("stopping", redis.url)
    running = submit(iterations=40)
    queued = submit(iterations=2)
    wait_for_job(running, running_at_step(5), worker)
    worker.terminate()

    wait_until(lambda: not worker.alive(), 90, worker.tail)
    assert worker.process.returncode == 0, worker.tail()
    row = StyleJob.objects.get(pk=running.pk)
    assert (row.status, row.attempts) == (Status.SUCCEEDED, 1), worker.tail()
    assert StyleJob.objects.get(pk=queued.pk).status == Status.QUEUED
    assert broker_holds() is not None  # its message waits in Redis

    successor = worker_factory("successor", redis.url)
    assert wait_for_job(queued, finished, successor).status == Status.SUCCEEDED, successor.tail()
    wait_until(lambda: broker_holds() is None, 10, broker_holds)


def test_a_worker_killed_after_the_grace_hands_its_job_back_and_the_restarted_worker_resumes_it(
        redis, worker_factory, submit):
    # A short visibility timeout stands in for the real one (the hard limit + 10 minutes).
    worker = worker_factory("restarted", redis.url, BROKER_VISIBILITY_TIMEOUT="4", BROKER_RESTORE_EVERY_SECONDS="1")
    job = submit(iterations=60)
    wait_for_job(job, lambda r: r.status == Status.RUNNING and r.checkpoint.name and r.step >= 5, worker)
    worker.terminate()
    wait_until(lambda: "warm shutdown" in worker.log().lower(), 10, worker.tail)
    worker.kill()  # the grace is over: the main process and its pool, at once
    assert StyleJob.objects.get(pk=job.pk).status == Status.RUNNING

    worker.start().wait_ready()
    row = wait_for_job(job, finished, worker)
    assert (row.status, row.attempts) == (Status.SUCCEEDED, 2), worker.tail()
    assert re.search(rf"job {job.pk}: resuming from its checkpoint \(scale 0, iteration [1-9]", worker.log()), \
        worker.tail()
    wait_until(lambda: broker_holds() is None, 10, broker_holds)
