"""The queue dashboard's figures, its JSON and requeue button, and /metrics, on real rows.
(With a real Redis and worker: tests/integration/test_dashboard_live.py.)"""

from __future__ import annotations

import socket
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from webapp.jobs import lifecycle
from webapp.staff import monitoring
from webapp.models import JobAttempt, StyleJob, WorkerHeartbeat

Status = StyleJob.Status
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def quick_inspect(settings):
    settings.DASHBOARD_INSPECT_TIMEOUT = 0.1  # no worker answers the in-memory broker


@pytest.fixture
def staff_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", None))
    return client


def finished_job(make_job, status, *, waited: float, ran: float, ago: float = 60, error: str = "") -> StyleJob:
    """A job that went through claim and ended `ago` seconds ago after `waited` in the queue and
    `ran` seconds running (the timestamps are set; the transitions are the real ones)."""
    job = lifecycle.claim(make_job().pk, "gpu0@box")
    end = timezone.now() - timedelta(seconds=ago)
    started = end - timedelta(seconds=ran)
    StyleJob.objects.filter(pk=job.pk).update(created=started - timedelta(seconds=waited), started=started,
                                              finished=end, status=status, error=error, elapsed_seconds=ran)
    JobAttempt.objects.filter(job=job).update(started=started, ended=end)
    return StyleJob.objects.get(pk=job.pk)


@pytest.fixture
def closed_port_broker(monkeypatch):
    """A Redis URL where nothing listens: the broker is down."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("CELERY_BROKER_URL", f"redis://127.0.0.1:{port}/0")


def test_percentile_is_nearest_rank():
    assert monitoring.percentile([], 50) is None
    assert monitoring.percentile([3.0], 95) == 3.0
    values = list(range(1, 101))
    assert (monitoring.percentile(values, 50), monitoring.percentile(values, 95)) == (50, 95)


def test_timings_throughput_and_failures_of_the_last_day(make_job):
    for waited, ran in ((1, 10), (3, 30), (5, 50)):
        finished_job(make_job, Status.SUCCEEDED, waited=waited, ran=ran)
    finished_job(make_job, Status.FAILED, waited=2, ran=5, error="The style image could not be read")
    finished_job(make_job, Status.SUCCEEDED, waited=99, ran=99, ago=2 * 86400)  # outside the window
    make_job()  # queued

    data = monitoring.snapshot()
    t = data["timings"]
    assert (t["finished"], t["failed"], t["failure_rate"]) == (4, 1, 0.25)
    assert (round(t["queue_wait_p50"]), round(t["queue_wait_p95"])) == (2, 5)
    assert (round(t["run_time_p50"]), round(t["run_time_p95"])) == (30, 50)
    assert len(data["throughput"]) == 24
    assert sum(h["succeeded"] for h in data["throughput"]) == 3
    assert sum(h["failed"] for h in data["throughput"]) == 1
    assert data["jobs_by_status"] == {"queued": 1, "running": 0, "succeeded": 4, "failed": 1, "cancelled": 0}
    assert data["last_failures"][0]["error"] == "The style image could not be read"


def test_stuck_jobs_are_listed_and_the_button_requeues_them(staff_client, make_job, settings,
                                                             django_capture_on_commit_callbacks, sent):
    silent, alive = (lifecycle.claim(make_job().pk, "gpu0@box") for _ in range(2))
    StyleJob.objects.filter(pk=silent.pk).update(
        last_heartbeat=timezone.now() - timedelta(seconds=settings.STUCK_AFTER_SECONDS + 1))
    assert [j["id"] for j in staff_client.get(reverse("queue_data")).json()["stuck"]] == [str(silent.pk)]

    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(reverse("queue_requeue_stuck"), {"job": [str(silent.pk), str(alive.pk), "junk"]},
                                     follow=True)
    assert response.status_code == 200
    page = response.content.decode()
    assert "Requeued 1 stuck job(s)" in page and "were no longer stuck" in page
    assert StyleJob.objects.get(pk=silent.pk).status == Status.QUEUED
    assert StyleJob.objects.get(pk=alive.pk).status == Status.RUNNING
    assert sent[-1]["task_id"] == StyleJob.objects.get(pk=silent.pk).task_id


def test_the_requeue_button_needs_the_change_permission(client, django_user_model, make_job, settings):
    viewer = django_user_model.objects.create_user("viewer", is_staff=True)
    client.force_login(viewer)
    job = lifecycle.claim(make_job().pk, "w")
    StyleJob.objects.filter(pk=job.pk).update(last_heartbeat=timezone.now() - timedelta(days=1))
    assert client.post(reverse("queue_requeue_stuck"), {"job": [str(job.pk)]}).status_code == 403
    assert StyleJob.objects.get(pk=job.pk).status == Status.RUNNING


def test_the_page_embeds_its_data_and_links_from_the_admin_index(staff_client, make_job):
    make_job()
    page = staff_client.get(reverse("queue_dashboard")).content.decode()
    assert 'id="dashboard-data"' in page and '"queued": 1' in page
    assert "js/queue_dashboard.js" in page and "<script src=\"http" not in page  # no CDN
    assert reverse("queue_dashboard") in staff_client.get(reverse("admin:index")).content.decode()


def test_with_the_broker_down_the_page_still_answers_from_heartbeats(staff_client, closed_port_broker, settings):
    now = timezone.now()
    WorkerHeartbeat.objects.create(name="fresh@box", device="NVIDIA H200 (GPU 0)", device_memory_bytes=141 * 2**30,
                                   device_memory_used_bytes=3 * 2**30, last_seen=now)
    WorkerHeartbeat.objects.create(name="stale@box", device="CPU", last_seen=now - timedelta(hours=1))
    data = staff_client.get(reverse("queue_data")).json()
    assert data["broker"]["available"] is False and "did not answer" in data["broker"]["error"]
    assert data["inspect_error"]
    state = {w["name"]: (w["online"], w["device"], w["memory_used"]) for w in data["workers"]}
    assert state == {"fresh@box": (True, "NVIDIA H200 (GPU 0)", 3 * 2**30), "stale@box": (False, "CPU", None)}
    assert staff_client.get(reverse("queue_dashboard")).status_code == 200


def test_metrics_for_staff_in_the_prometheus_format(staff_client, make_job):
    finished_job(make_job, Status.SUCCEEDED, waited=1, ran=8)
    finished_job(make_job, Status.SUCCEEDED, waited=1, ran=400)
    make_job()
    WorkerHeartbeat.objects.create(name="gpu0@box", device="CPU", device_memory_bytes=8 * 2**30,
                                   device_memory_used_bytes=2**30)
    response = staff_client.get(reverse("metrics"))
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain; version=0.0.4")
    lines = set(response.content.decode().splitlines())
    assert 'stylize_jobs{status="queued"} 1' in lines and 'stylize_jobs{status="succeeded"} 2' in lines
    assert "# TYPE stylize_job_run_seconds histogram" in lines
    assert {'stylize_job_run_seconds_bucket{le="5"} 0', 'stylize_job_run_seconds_bucket{le="10"} 1',
            'stylize_job_run_seconds_bucket{le="600"} 2', 'stylize_job_run_seconds_bucket{le="+Inf"} 2',
            "stylize_job_run_seconds_count 2", "stylize_job_run_seconds_sum 408"} <= lines
    assert "stylize_workers_online 1" in lines
    assert 'stylize_worker_memory_used_bytes{worker="gpu0@box",device="CPU"} 1073741824' in lines


def test_metrics_for_a_scraper_with_the_token(client, settings):
    settings.METRICS_TOKEN = "s3cret-token"
    assert client.get(reverse("metrics"), HTTP_AUTHORIZATION="Bearer s3cret-token").status_code == 200
    assert client.get(reverse("metrics"), HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    settings.METRICS_TOKEN = None
    assert client.get(reverse("metrics"), HTTP_AUTHORIZATION="Bearer ").status_code == 401


def test_metrics_say_when_the_broker_is_down(staff_client, closed_port_broker):
    assert "stylize_broker_up 0" in staff_client.get(reverse("metrics")).content.decode().splitlines()
