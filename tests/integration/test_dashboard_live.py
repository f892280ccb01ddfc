"""The queue dashboard against a real redis-server and real worker processes: a worker online
with its device, then offline once killed; a job whose worker was killed found stuck and, requeued
from the dashboard, completed by another worker; a raised priority served first."""

from __future__ import annotations

import socket
import time

import pytest
from django.urls import reverse

from tests.processes import finished, running_at_step, wait_for_job, wait_until
from webapp.jobs import lifecycle
from webapp.models import JobAttempt, StyleJob

pytestmark = pytest.mark.django_db(transaction=True)  # the workers see what this process commits

Status = StyleJob.Status
HOST = socket.gethostname()


@pytest.fixture
def staff_client(client, django_user_model, settings):
    settings.DASHBOARD_INSPECT_TIMEOUT = 1.0
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", None))
    return client


def submit(person, images, iterations: int, priority: int = 0) -> StyleJob:
    content, style = images
    return lifecycle.create_job(person, content, [style], {"size": 48, "scales": 1, "iterations": iterations, "seed": 1},
                           priority=priority)


def workers_seen(staff_client) -> dict[str, dict]:
    response = staff_client.get(reverse("queue_data"))
    assert response.status_code == 200
    return {w["name"]: w for w in response.json()["workers"]}


def test_a_worker_is_online_with_its_device_and_offline_once_killed(staff_client, redis, worker_factory):
    worker = worker_factory("dash", redis.url)
    name = f"dash@{HOST}"
    seen = wait_until(lambda: workers_seen(staff_client).get(name, {}).get("online") and workers_seen(staff_client)[name],
                      30, lambda: f"the worker is not online on the dashboard:\n{worker.tail()}")
    assert seen["device"].startswith("CPU, ")  # reported by the worker itself, on its heartbeat
    assert 0 < seen["memory_used"] < seen["memory_total"]
    assert seen["processes"] == 1 and seen["job_ids"] == []

    worker.kill()
    started = time.monotonic()
    after = workers_seen(staff_client)
    assert after[name]["online"] is False
    assert after[name]["device"] == seen["device"]  # still listed, with what it last said
    assert time.monotonic() - started < 15  # the page answers: inspect waits its short timeout, no more
    assert staff_client.get(reverse("queue_dashboard")).status_code == 200


def test_a_job_whose_worker_was_killed_is_stuck_and_requeued_completes(staff_client, redis, worker_factory, person, images,
                                                                        settings):
    first = worker_factory("first", redis.url, CHECKPOINT_EVERY_SECONDS="0.2")
    job = submit(person, images, iterations=400)
    wait_for_job(job, running_at_step(3), first)
    first.kill()  # the whole worker: nobody re-delivers its message before the visibility timeout
    settings.STUCK_AFTER_SECONDS = 2  # this process's threshold; the worker is gone for good

    def stuck_ids():
        return [j["id"] for j in staff_client.get(reverse("queue_data")).json()["stuck"]]

    wait_until(lambda: str(job.pk) in stuck_ids(), 30, "the job was not shown as stuck")
    response = staff_client.post(reverse("queue_requeue_stuck"), {"job": [str(job.pk)]}, follow=True)
    assert "Requeued 1 stuck job(s)" in response.content.decode()
    assert StyleJob.objects.get(pk=job.pk).status == Status.QUEUED

    second = worker_factory("second", redis.url)
    done = wait_for_job(job, finished, first, second, timeout=180)
    assert done.status == Status.SUCCEEDED and done.worker_host == f"second@{HOST}"
    outcomes = list(JobAttempt.objects.filter(job=job).values_list("worker_host", "outcome"))
    assert outcomes == [(f"first@{HOST}", "requeued"), (f"second@{HOST}", "succeeded")]
    assert str(job.pk) not in stuck_ids()


def test_a_raised_priority_is_served_first(staff_client, redis, worker_factory, person, images):
    waiting = [submit(person, images, iterations=2) for _ in range(3)]
    last = waiting[-1]
    staff_client.post(reverse("admin:webapp_stylejob_changelist"),
                      {"action": "raise_priority", "_selected_action": [str(last.pk)]})
    assert StyleJob.objects.get(pk=last.pk).priority == 1
    worker = worker_factory("order", redis.url)
    for job in waiting:
        wait_for_job(job, finished, worker)
    order = list(StyleJob.objects.filter(pk__in=[j.pk for j in waiting]).order_by("started").values_list("pk", flat=True))
    assert order[0] == last.pk, worker.tail()
    assert StyleJob.objects.get(pk=last.pk).attempts == 1  # its old message (lane 4) was dropped, not run
