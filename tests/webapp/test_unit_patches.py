"""The nine patches that excite a unit: asked for on the job page, computed by a worker, served from
storage; the web process computes nothing, a person's requests are throttled, a job keeps a
bounded number of pictures, and with no worker running the answer says so.

The worker's task runs here in this process (Celery's apply(), with the message id it was sent
under); the engine's top_patches is stood in for (the browser test runs the real one)."""

from __future__ import annotations

import pytest
from django.core.cache import caches
from django.core.files.storage import default_storage
from django.utils import timezone
from PIL import Image

from tests.webapp.test_pages_job import done, logged_in  # noqa: F401 (fixtures)
from webapp.models import UnitPatches, WorkerHeartbeat
from webapp.queue.lanes import PATCHES_QUEUE, PATCHES_TASK_NAME
from webapp.worker import patches as patches_task

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_throttle():
    caches["throttle"].clear()


@pytest.fixture
def worker_online(db):
    return WorkerHeartbeat.objects.create(name="gpu0@box", device="CPU", last_seen=timezone.now())


@pytest.fixture
def messages(monkeypatch):
    """The patches messages the web sends (kept, not published), and a worker to run them."""
    from webapp.celery import app

    sent: list[dict] = []

    def keep(name, **kwargs):
        assert name == PATCHES_TASK_NAME and kwargs["queue"] == PATCHES_QUEUE
        sent.append(kwargs)

    monkeypatch.setattr(app, "send_task", keep)
    monkeypatch.setattr("webapp.queue.broker.ping", lambda: True)
    return sent


@pytest.fixture
def computed(monkeypatch):
    """Stands in for the engine's top_patches in the worker; records what it was asked."""
    calls = []

    def fake(job, layer, unit):
        calls.append((job.pk, layer, unit))
        return Image.new("RGB", (30, 20), (unit % 256, 0, 0))

    monkeypatch.setattr(patches_task, "render_patches", fake)
    return calls


def work(messages) -> list[str]:
    """A worker takes every message sent so far; what each run returned."""
    outcomes = [patches_task.render_unit_patches.apply(args=m["args"], task_id=m["task_id"]).get()
                for m in messages]
    messages.clear()
    return outcomes


@pytest.fixture
def ask(django_capture_on_commit_callbacks):
    """ask(client, job, layer, unit) -> the response; messages go out as the request commits."""
    def get(client, job, layer="relu3_1", unit=7):
        with django_capture_on_commit_callbacks(execute=True):
            return client.get(f"/jobs/{job.pk}/patches.png", {"layer": layer, "unit": str(unit)})

    return get


def test_a_worker_computes_the_picture_while_the_page_waits_then_it_is_read_from_storage(
        ask, logged_in, done, worker_online, messages, computed):
    first = ask(logged_in, done)
    assert first.status_code == 202 and first["Retry-After"] == "1" and first["Cache-Control"] == "no-store"
    assert computed == []  # the web process computed nothing
    assert ask(logged_in, done).status_code == 202 and len(messages) == 1  # asked once, not twice

    assert work(messages) == ["done"]
    ready = ask(logged_in, done)
    assert ready.status_code == 200 and ready["Content-Type"] == "image/png"
    assert ready["X-Content-Type-Options"] == "nosniff"
    again = ask(logged_in, done)
    assert b"".join(again.streaming_content) == b"".join(ready.streaming_content)
    assert computed == [(done.pk, "relu3_1", 7)] and messages == []


def test_the_file_views_import_nothing_that_computes(done):
    from webapp.pages.views import files

    assert not hasattr(files, "top_patches") and not hasattr(files, "features_for")
    assert not hasattr(files, "render_patches")


@pytest.mark.parametrize("query, message", [
    ({"layer": "relu3_1", "unit": "256"}, "unit: relu3_1 has 256 units: choose one from 0 to 255."),
    ({"layer": "relu1_1", "unit": "-1"}, "unit: Ensure this value is greater than or equal to 0."),
    ({"layer": "relu1_1", "unit": "one"}, "unit: Enter a whole number."),
    ({"layer": "relu9_9", "unit": "0"}, "layer: Select a valid choice."),
    ({"unit": "0"}, "layer: This field is required."),
])
def test_a_bad_layer_or_unit_is_a_400_with_a_message(logged_in, done, worker_online, messages, query, message):
    response = logged_in.get(f"/jobs/{done.pk}/patches.png", query)
    assert response.status_code == 400 and response["Content-Type"] == "text/plain; charset=utf-8"
    assert response.content.decode().startswith(message.split(" relu9_9")[0])
    assert messages == [] and not UnitPatches.objects.exists()


def test_patches_wait_for_the_result(ask, logged_in, queued_job, worker_online, messages):
    response = ask(logged_in, queued_job, "relu1_1", 0)
    assert response.status_code == 409 and "finished" in response.content.decode()
    assert messages == []


def test_with_no_worker_running_the_request_is_refused_with_a_503_and_nothing_is_recorded(
        ask, logged_in, done, messages):
    WorkerHeartbeat.objects.all().delete()  # a session's worker elsewhere in the suite may have written one
    WorkerHeartbeat.objects.create(name="gone@box", last_seen=timezone.now() - timezone.timedelta(hours=1))
    response = ask(logged_in, done)
    assert response.status_code == 503 and "No worker is running" in response.content.decode()
    assert messages == [] and not UnitPatches.objects.exists()


def test_a_person_may_ask_for_a_limited_number_of_new_pictures_an_hour(
        ask, logged_in, done, worker_online, messages, computed, settings):
    settings.PATCHES_PER_HOUR = 2
    assert [ask(logged_in, done, unit=u).status_code for u in (1, 2)] == [202, 202]
    refused = ask(logged_in, done, unit=3)
    assert refused.status_code == 429 and "within the hour" in refused.content.decode()
    work(messages)
    assert ask(logged_in, done, unit=1).status_code == 200  # what was made still shows
    assert not UnitPatches.objects.filter(unit=3).exists()


def test_a_job_keeps_at_most_its_cap_of_pictures_and_the_oldest_goes(
        ask, logged_in, done, worker_online, messages, computed, settings):
    settings.PATCHES_PER_JOB = 2
    for unit in (1, 2):
        ask(logged_in, done, unit=unit)
        work(messages)
    oldest = UnitPatches.objects.get(unit=1).file.name
    assert default_storage.exists(oldest)
    ask(logged_in, done, unit=3)
    work(messages)
    assert sorted(UnitPatches.objects.values_list("unit", flat=True)) == [2, 3]
    assert not default_storage.exists(oldest)


def test_a_picture_that_could_not_be_computed_says_why_once_and_the_next_request_asks_again(
        ask, logged_in, done, worker_online, messages, monkeypatch):
    def broken(job, layer, unit):
        raise RuntimeError("boom")

    monkeypatch.setattr(patches_task, "render_patches", broken)
    ask(logged_in, done)
    assert work(messages) == ["failed"]
    failed = ask(logged_in, done)
    assert failed.status_code == 409 and "could not be computed" in failed.content.decode()
    assert ask(logged_in, done).status_code == 202 and len(messages) == 1


def test_a_request_waiting_too_long_is_sent_again_and_its_old_message_computes_nothing(
        ask, logged_in, done, worker_online, messages, computed, settings):
    ask(logged_in, done)
    lost = messages.pop()
    UnitPatches.objects.update(requested=timezone.now() - timezone.timedelta(seconds=settings.PATCHES_WAIT_SECONDS + 1))
    assert ask(logged_in, done).status_code == 202
    assert len(messages) == 1 and messages[0]["task_id"] != lost["task_id"]
    assert patches_task.render_unit_patches.apply(args=lost["args"], task_id=lost["task_id"]).get() == "not needed"
    assert work(messages) == ["done"] and len(computed) == 1
