"""A running job's heartbeat: written by a thread of its own whatever the engine is doing, stamped and
compared with the database's clock (not the worker's), stopped once the attempt has lost the job;
and a message for a job running elsewhere waits for the heartbeat to go stale before it takes over."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db.models import F
from django.db.models.functions import Now
from django.utils import timezone

from tests.processes import wait_until
from webapp.jobs import lifecycle
from webapp.models import StyleJob
from webapp.worker.job_heartbeat import JobHeartbeat

pytestmark = pytest.mark.django_db(transaction=True)  # the thread writes through its own connection

Status = StyleJob.Status


def heartbeat_of(job) -> timezone.datetime:
    return StyleJob.objects.values_list("last_heartbeat", flat=True).get(pk=job.pk)


def age_by_the_database(job) -> float:
    return StyleJob.objects.filter(pk=job.pk).annotate(age=Now() - F("last_heartbeat")).get().age.total_seconds()


@pytest.fixture
def running(queued_job):
    return lifecycle.claim(queued_job.id, "gpu0@box", task_id=queued_job.task_id)


def test_the_heartbeat_thread_beats_while_the_run_is_silent(running):
    claimed = heartbeat_of(running)
    with JobHeartbeat(running, every=0.05) as beating:
        wait_until(lambda: beating.beats >= 3, 30, "no heartbeat written")  # the run itself reports nothing
    assert heartbeat_of(running) > claimed
    assert not beating._thread.is_alive()  # stopped with the run


def test_the_heartbeat_stops_once_another_attempt_holds_the_job(running, settings):
    settings.STUCK_AFTER_SECONDS = 2
    StyleJob.objects.filter(pk=running.pk).update(last_heartbeat=timezone.now() - timedelta(seconds=3))
    taken = lifecycle.claim(running.id, "gpu1@elsewhere", task_id=running.task_id)
    assert taken.attempts == 2
    with JobHeartbeat(running, every=0.05) as old:
        wait_until(lambda: not old._thread.is_alive(), 30, "the old attempt's heartbeat went on")
    assert old.beats == 0 and lifecycle.beat(taken)


def test_heartbeats_use_the_database_clock_so_a_worker_with_a_slow_clock_does_not_look_dead(running, monkeypatch,
                                                                                            settings):
    slow = timezone.now() - timedelta(minutes=10)
    monkeypatch.setattr(timezone, "now", lambda: slow)  # this "worker's" clock is ten minutes behind
    assert lifecycle.beat(running)
    monkeypatch.undo()
    assert age_by_the_database(running) < settings.STUCK_AFTER_SECONDS
    assert not lifecycle.stuck_jobs().filter(pk=running.pk).exists()


def test_a_message_at_another_node_waits_while_the_heartbeat_is_fresh_then_takes_over(running, settings):
    settings.STUCK_AFTER_SECONDS = 60
    assert lifecycle.claim(running.id, "gpu1@elsewhere", task_id=running.task_id) is None
    wait = lifecycle.takeover_delay(running.id, running.task_id, "gpu1@elsewhere")
    assert 55 < wait <= 61  # the heartbeat was just written at the claim
    StyleJob.objects.filter(pk=running.pk).update(last_heartbeat=Now() - timedelta(seconds=45))
    assert 14 < lifecycle.takeover_delay(running.id, running.task_id, "gpu1@elsewhere") <= 16
    StyleJob.objects.filter(pk=running.pk).update(last_heartbeat=Now() - timedelta(seconds=61))
    taken = lifecycle.claim(running.id, "gpu1@elsewhere", task_id=running.task_id)
    assert (taken.status, taken.attempts, taken.worker_host) == (Status.RUNNING, 2, "gpu1@elsewhere")


def test_a_message_that_can_never_run_its_job_does_not_wait(running, queued_job):
    assert lifecycle.takeover_delay(running.id, "another-message", "gpu1@elsewhere") is None
    assert lifecycle.takeover_delay(running.id, running.task_id, "gpu0@box") is None  # its own node takes over at once
    lifecycle.cancel(running)
    lifecycle.confirm_cancelled(running)
    assert lifecycle.takeover_delay(running.id, running.task_id, "gpu1@elsewhere") is None
