"""The reconciler (webapp/jobs/reconcile.py, `manage.py reconcile_jobs`) with a real Redis and real workers:
jobs queued in the database whose messages Redis lost are sent again once it answers, a running job
whose worker vanished is requeued and resumes elsewhere, and with the broker unreachable it changes
nothing and says so."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import pytest
from django.core.management import call_command

from tests.processes import (REPO_ROOT, broker_holds, database_url_for_subprocesses, finished, wait_for_job,
                             wait_until)
from webapp.models import StyleJob

pytestmark = pytest.mark.django_db(transaction=True)

Status = StyleJob.Status


@pytest.fixture
def manage(python_env, django_db_blocker):
    """manage(url, *args) -> `python manage.py <args>` started with this test's database and broker `url`."""
    with django_db_blocker.unblock():
        database_url = database_url_for_subprocesses()

    def start(broker_url: str, *args: str, **env: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "manage.py", *args], cwd=REPO_ROOT, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                env={**python_env, "DATABASE_URL": database_url, "CELERY_BROKER_URL": broker_url,
                                     "LOG_LEVEL": "INFO", **env})
    return start


def test_queued_jobs_whose_messages_redis_lost_are_sent_again_and_run(redis, worker_factory, submit, settings,
                                                                      capsys):
    lost = [submit(iterations=2) for _ in range(3)]
    redis.kill()
    redis.start()  # no append-only file: it comes back empty
    assert broker_holds() is None
    young = submit(iterations=2)  # its message is on its way: within the grace, not touched
    StyleJob.objects.filter(pk__in=[job.pk for job in lost]).update(created=young.created.replace(year=2000))

    call_command("reconcile_jobs")
    assert "3 queued job(s) sent again, 0 stuck job(s) requeued" in capsys.readouterr().out
    rows = {row.pk: row for row in StyleJob.objects.all()}
    assert all(rows[job.pk].task_id != job.task_id for job in lost)  # the old ids can no longer claim them
    assert rows[young.pk].task_id == young.task_id

    worker = worker_factory("reconciled", redis.url)
    for job in [*lost, young]:
        row = wait_for_job(job, finished, worker)
        assert (row.status, row.attempts) == (Status.SUCCEEDED, 1), worker.tail()


def test_a_running_job_whose_worker_vanished_is_requeued_and_resumes_on_another_worker(
        redis, worker_factory, submit, settings):
    settings.STUCK_AFTER_SECONDS = 10  # the reconciler runs in this process
    vanished = worker_factory("vanished", redis.url)
    job = submit(iterations=50)
    wait_for_job(job, lambda r: r.status == Status.RUNNING and r.checkpoint.name and r.step >= 5, vanished)
    vanished.kill()  # its machine is gone: the message stays unacknowledged in Redis for hours
    successor = worker_factory("successor", redis.url, ready=False)

    call_command("reconcile_jobs")
    assert StyleJob.objects.get(pk=job.pk).status == Status.RUNNING  # not silent for long enough yet
    wait_until(lambda: StyleJob.objects.filter(pk=job.pk).filter(last_heartbeat__lt=_ago(10)).exists(), 20,
               "the job's heartbeat did not age")
    call_command("reconcile_jobs")
    assert StyleJob.objects.get(pk=job.pk).status == Status.QUEUED

    successor.wait_ready()
    row = wait_for_job(job, finished, successor)
    assert (row.status, row.attempts, row.worker_host) == (Status.SUCCEEDED, 2, successor.node), successor.tail()
    assert re.search(rf"job {job.pk}: resuming from its checkpoint \(scale 0, iteration [1-9]", successor.log())
    assert [a.outcome for a in row.attempt_log.all()] == ["requeued", "succeeded"]


def _ago(seconds: float):
    from datetime import timedelta

    from django.utils import timezone

    return timezone.now() - timedelta(seconds=seconds)


def test_with_redis_down_a_pass_changes_nothing_and_exits_non_zero(redis, submit, manage):
    job = submit(iterations=2)
    StyleJob.objects.filter(pk=job.pk).update(created=_ago(3600))
    redis.stop()
    command = manage(redis.url, "reconcile_jobs")
    output, _ = command.communicate(timeout=120)
    assert command.returncode == 1, output
    assert "nothing reconciled: Redis at redis://127.0.0.1:" in output
    assert StyleJob.objects.get(pk=job.pk).task_id == job.task_id


def test_the_reconciler_loop_waits_out_a_redis_outage_then_sends_the_lost_messages(redis, submit, manage, tmp_path):
    job = submit(iterations=2)
    StyleJob.objects.filter(pk=job.pk).update(created=_ago(3600))
    redis.kill()  # and with it the job's message
    alive = tmp_path / "alive"
    loop = manage(redis.url, "reconcile_jobs", "--every", "0.5", "--alive-file", str(alive))
    try:
        wait_until(alive.exists, 60, "no pass was made")
        assert StyleJob.objects.get(pk=job.pk).task_id == job.task_id
        redis.start()
        resent = wait_until(lambda: StyleJob.objects.get(pk=job.pk).task_id != job.task_id, 20,
                            "the job was not sent again after Redis came back")
        assert resent
        wait_until(lambda: broker_holds() is not None, 5, "no message in Redis")
        assert StyleJob.objects.get(pk=job.pk).task_id in _task_ids()
        loop.send_signal(signal.SIGTERM)
        output, _ = loop.communicate(timeout=10)
    finally:
        if loop.poll() is None:
            loop.kill()
            loop.wait()
    assert loop.returncode == 0, output
    assert "nothing reconciled: Redis at" in output and "reconciled: 1 queued job(s) sent again" in output


def _task_ids() -> set[str]:
    from webapp.queue import broker

    return broker.read(with_task_ids=True).task_ids
