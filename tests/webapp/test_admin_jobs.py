"""The job admin: list columns, filters, search, each action and the detail page, on real rows
moved through the real lifecycle (webapp/lifecycle.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.urls import reverse
from django.utils import timezone

from webapp.jobs import lifecycle
from webapp.queue import lanes
from webapp.models import Batch, JobAttempt, StyleJob

Status = StyleJob.Status
pytestmark = pytest.mark.django_db
CHANGELIST = "admin:webapp_stylejob_changelist"


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_superuser("root", "root@example.com", None)


@pytest.fixture
def admin_client(client, staff):
    client.force_login(staff)
    return client


def listed(response) -> set[str]:
    """The job ids on a changelist page (each row's checkbox carries one)."""
    assert response.status_code == 200
    return {str(pk) for pk in response.context["cl"].result_list.values_list("pk", flat=True)}


@pytest.fixture
def run_action(admin_client, django_capture_on_commit_callbacks):
    """run_action(name, *jobs) → the changelist after the admin action ran on those jobs (and what
    it left for after the commit: messages to the broker, file deletions)."""
    def run(action: str, *job_list):
        with django_capture_on_commit_callbacks(execute=True):
            return admin_client.post(reverse(CHANGELIST),
                                     {"action": action, "_selected_action": [str(j.pk) for j in job_list]}, follow=True)
    return run


def reload(job: StyleJob) -> StyleJob:
    return StyleJob.objects.get(pk=job.pk)


# -- the list ---------------------------------------------------------------------------------

def test_the_list_shows_each_column_for_real_jobs(admin_client, run_action, make_job):
    queued, running = make_job(), make_job()
    assert lifecycle.report_progress(lifecycle.claim(running.pk, "gpu0@box", task_id=running.task_id), {"progress": 0.4})
    html = admin_client.get(reverse(CHANGELIST)).content.decode()
    for column in ("queue wait", "run time", "worker host", "attempts", "batch", "progress", "created"):
        assert column in html.lower()
    assert str(queued.pk)[:8] in html and str(running.pk)[:8] in html
    assert "gpu0@box" in html
    assert 'value="40"' in html  # the running job's progress bar
    assert "background:#0b6bcb" in html  # running, coloured
    assert reverse("pages:image_thumbnail", args=[queued.content_id]) in html  # thumbnail of its content


def test_filters_by_status_owner_worker_date_and_batch(admin_client, run_action, make_job, other, upload):
    batch = Batch.objects.create(owner=other, name="autumn")
    theirs = make_job(other, content=upload(other, "content", "chelsea.png"),
                      styles=[upload(other, "style", "starry_night.jpg")], batch=batch)
    mine = make_job()
    lifecycle.claim(mine.pk, "gpu1@box", task_id=mine.task_id)
    old = make_job()
    StyleJob.objects.filter(pk=old.pk).update(created=timezone.now() - timedelta(days=40))

    url = reverse(CHANGELIST)
    assert listed(admin_client.get(url, {"status__exact": "running"})) == {str(mine.pk)}
    assert listed(admin_client.get(url, {"owner__id__exact": other.pk})) == {str(theirs.pk)}
    assert listed(admin_client.get(url, {"worker": "gpu1@box"})) == {str(mine.pk)}
    assert listed(admin_client.get(url, {"batch__id__exact": str(batch.pk)})) == {str(theirs.pk)}
    since = str(timezone.now() - timedelta(days=7))  # as the date filter's own links write it
    assert str(old.pk) not in listed(admin_client.get(url, {"created__gte": since}))


def test_search_finds_a_job_by_id_owner_or_error(admin_client, run_action, make_job):
    first, second = make_job(), make_job()
    job = lifecycle.claim(second.pk, "w", task_id=second.task_id)
    lifecycle.fail(job, "Could not decode the style image")
    url = reverse(CHANGELIST)
    assert listed(admin_client.get(url, {"q": str(first.pk)})) == {str(first.pk)}
    assert listed(admin_client.get(url, {"q": str(first.pk).replace("-", "")})) == {str(first.pk)}
    assert listed(admin_client.get(url, {"q": "decode the style"})) == {str(second.pk)}
    assert listed(admin_client.get(url, {"q": "ada"})) == {str(first.pk), str(second.pk)}


def test_the_list_sorts_by_queue_wait(admin_client, run_action, make_job):
    quick, slow = make_job(), make_job()
    for job, waited in ((quick, 1), (slow, 100)):
        StyleJob.objects.filter(pk=job.pk).update(created=timezone.now() - timedelta(seconds=waited))
        lifecycle.claim(job.pk, "w", task_id=job.task_id)
    response = admin_client.get(reverse(CHANGELIST), {"o": "-7"})  # 7th column: queue wait, descending
    assert [str(j.pk) for j in response.context["cl"].result_list] == [str(slow.pk), str(quick.pk)]


# -- actions ----------------------------------------------------------------------------------

def test_cancel_stops_a_queued_job_and_asks_a_running_one(admin_client, run_action, make_job):
    queued, running = make_job(), make_job()
    lifecycle.claim(running.pk, "w", task_id=running.task_id)
    response = run_action("cancel_jobs", queued, running)
    assert "Cancelled or asked to stop: 2 job(s)" in response.content.decode()
    assert reload(queued).status == Status.CANCELLED
    assert (reload(running).status, reload(running).cancel_requested) == (Status.RUNNING, True)
    assert lifecycle.should_cancel(running.pk)  # what the worker reads at its next progress report


def test_retry_queues_failed_and_cancelled_jobs_again_with_a_new_message(admin_client, run_action, make_job, sent):
    failed, cancelled, queued = make_job(), make_job(), make_job()
    lifecycle.fail(lifecycle.claim(failed.pk, "w", task_id=failed.task_id), "boom")
    lifecycle.cancel(cancelled)
    before = len(sent)
    run_action("retry_jobs", failed, cancelled, queued)
    for job in (failed, cancelled):
        again = reload(job)
        assert (again.status, again.attempts, again.error) == (Status.QUEUED, 0, "")
        assert again.task_id != job.task_id
    assert {m["task_id"] for m in sent[before:]} == {reload(failed).task_id, reload(cancelled).task_id}
    assert reload(queued).task_id == queued.task_id  # not touched


def test_requeue_stuck_takes_only_silent_running_jobs(admin_client, run_action, make_job, settings):
    silent, alive = make_job(), make_job()
    for job in (silent, alive):
        lifecycle.claim(job.pk, "w", task_id=job.task_id)
    StyleJob.objects.filter(pk=silent.pk).update(
        last_heartbeat=timezone.now() - timedelta(seconds=settings.STUCK_AFTER_SECONDS + 5))
    response = run_action("requeue_stuck_jobs", silent, alive)
    assert "Requeued: 1 job(s)" in response.content.decode()
    assert reload(silent).status == Status.QUEUED and reload(alive).status == Status.RUNNING
    assert [a.outcome for a in JobAttempt.objects.filter(job=silent)] == [JobAttempt.Outcome.REQUEUED]


def test_raise_priority_sends_a_queued_job_again_in_a_sooner_lane(admin_client, run_action, make_job, sent):
    job = make_job()
    assert sent[-1]["priority"] == lanes.lane(0)
    for _ in range(3):
        run_action("raise_priority", job)
    again = reload(job)
    assert again.priority == 3
    assert sent[-1]["task_id"] == again.task_id != job.task_id  # the old message is stale now
    assert sent[-1]["priority"] < lanes.lane(0)  # lane 0 is served first
    run_action("lower_priority", job)
    assert reload(job).priority == 2


def test_priority_stays_within_bounds(admin_client, run_action, make_job):
    job = make_job()
    for _ in range(12):
        run_action("lower_priority", job)
    assert reload(job).priority == lifecycle.MIN_PRIORITY


def test_delete_with_files_removes_rows_and_stored_files(admin_client, run_action, make_job):
    finished, running = make_job(), make_job()
    lifecycle.cancel(finished)
    name = default_storage.save(f"results/{finished.pk}/result.png", ContentFile(b"png"))
    lifecycle.claim(running.pk, "w", task_id=running.task_id)
    response = run_action("delete_with_files", finished, running)
    assert not StyleJob.objects.filter(pk=finished.pk).exists()
    assert not default_storage.exists(name)
    # A running job is asked to stop, not deleted under its worker.
    assert StyleJob.objects.filter(pk=running.pk).exists()
    assert "Delete it once it has" in response.content.decode()


def test_the_default_bulk_delete_is_replaced(admin_client):
    response = admin_client.get(reverse(CHANGELIST))
    choices = [value for value, _label in response.context["action_form"].fields["action"].choices]
    assert "delete_selected" not in choices and "delete_with_files" in choices


# -- the detail page ----------------------------------------------------------------------------

def test_the_detail_shows_params_inputs_error_traceback_and_attempts(admin_client, run_action, make_job, settings):
    job = make_job()
    first = lifecycle.claim(job.pk, "gpu0@box", task_id=job.task_id)
    StyleJob.objects.filter(pk=job.pk).update(last_heartbeat=timezone.now() - timedelta(hours=1))
    second = lifecycle.claim(job.pk, "gpu1@box", task_id=job.task_id)  # takes over a silent attempt
    lifecycle.fail(second, "Out of memory at 512 px", "Traceback (most recent call last):\n  File <engine>")
    html = admin_client.get(reverse("admin:webapp_stylejob_change", args=[job.pk])).content.decode()
    assert "&quot;size&quot;: 48" in html  # every parameter, read-only
    assert reverse("pages:image_thumbnail", args=[job.content_id]) in html
    assert "Out of memory at 512 px" in html and "Traceback (most recent call last)" in html
    assert "gpu0@box" in html and "gpu1@box" in html
    assert "worker lost" in html and "failed" in html  # the attempt history
    assert first.attempts == 1 and reload(job).attempts == 2
    assert 'name="params"' not in html  # nothing editable


def test_staff_can_open_a_jobs_files_that_people_cannot(admin_client, client, make_job, other, upload):
    theirs = make_job(other, content=upload(other, "content", "chelsea.png"),
                      styles=[upload(other, "style", "starry_night.jpg")])
    url = reverse("pages:image_thumbnail", args=[theirs.content_id])
    assert admin_client.get(url).status_code == 200
    client.force_login(theirs.owner.__class__.objects.create_user("carol"))
    assert client.get(url).status_code == 404


# -- who gets in ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", [CHANGELIST, "admin:index", "queue_dashboard", "queue_data"])
def test_people_without_staff_rights_are_sent_to_the_admin_login(client, user, name):
    client.force_login(user)
    response = client.get(reverse(name))
    assert response.status_code == 302 and reverse("admin:login") in response["Location"]
    assert client.get(reverse(name), follow=True).context.get("snapshot") is None


def test_metrics_refuse_people_without_staff_rights(client, user):
    assert client.get(reverse("metrics")).status_code == 401
    client.force_login(user)
    assert client.get(reverse("metrics")).status_code == 403
