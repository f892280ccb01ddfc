"""A staff member opens the queue dashboard from the admin in a real browser: the session's real
worker is listed online with its device, a finished job shows in the charts, and the page
refreshes its figures without reloading. Screenshot: tests/e2e/artifacts/queue_dashboard.png."""

from __future__ import annotations

import socket

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.processes import finished, wait_for_job
from webapp.jobs import lifecycle, storage

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "a-long-staff-password-1"


@pytest.fixture
def finished_job(django_user_model, shared_media, broker, worker, sample_photo):
    person = django_user_model.objects.create_user("grace")
    content = storage.store_upload(person, SimpleUploadedFile("chelsea.png", sample_photo("content", "chelsea.png")))
    style = storage.store_upload(person, SimpleUploadedFile("starry.jpg", sample_photo("style", "starry_night.jpg")))
    job = lifecycle.create_job(person, content, [style], {"size": 48, "scales": 1, "iterations": 3, "seed": 1})
    return wait_for_job(job, finished, worker)


def test_staff_open_the_queue_dashboard_and_it_refreshes_itself(page, site, worker, finished_job, artifacts,
                                                                django_user_model):
    django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)
    page.goto(f"{site}/admin/")
    page.fill("#id_username", "root")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.click("text=Queue dashboard")

    row = page.locator(f'#workers-table tr[data-worker="integration@{socket.gethostname()}"]')
    row.wait_for()
    assert "online" in row.inner_text() and "CPU" in row.inner_text()
    assert page.locator("#chart-throughput rect.bar-ok").count() == 24
    assert page.locator("#dash-tiles").inner_text().lower().count("workers online\n1\n") == 1

    page.evaluate("window.__sameDocument = true")
    first = page.locator("#queue-dashboard").get_attribute("data-generated")
    page.wait_for_function("first => document.getElementById('queue-dashboard').dataset.generated !== first",
                           arg=first, timeout=20_000)
    assert page.evaluate("window.__sameDocument") is True  # refreshed in place, not reloaded
    assert page.locator("#chart-depth polyline.line-running").count() == 1
    assert page.js_errors == []
    page.screenshot(path=str(artifacts / "queue_dashboard.png"), full_page=True)
