"""My jobs: a gallery of the person's own jobs, newest first, a page at a time."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone
from PIL import Image

from webapp.jobs import lifecycle
from webapp.models import StyleJob
from webapp.pages.views.pages import JOBS_PER_PAGE

pytestmark = pytest.mark.django_db


@pytest.fixture
def logged_in(client, user):
    client.force_login(user)
    return client


def make_jobs(owner, content, style, count):
    made = []
    for i in range(count):
        job = lifecycle.create_job(owner, content, [style], {"size": 48 + i})
        StyleJob.objects.filter(pk=job.pk).update(created=timezone.now() - timedelta(minutes=count - i),
                                                  status=StyleJob.Status.SUCCEEDED)
        made.append(job)
    return made


def job_links(response) -> list[str]:
    return re.findall(r'class="job-card" href="/jobs/([0-9a-f-]+)/"', response.content.decode())


def test_an_empty_gallery_invites_a_first_job(logged_in):
    html = logged_in.get("/").content.decode()
    assert "No jobs yet" in html and 'href="/new/"' in html


def test_jobs_are_shown_newest_first_a_page_at_a_time(logged_in, user, content, style, settings):
    settings.JOBS_PER_USER = 100
    made = make_jobs(user, content, style, JOBS_PER_PAGE + 3)
    newest_first = [str(job.pk) for job in reversed(made)]
    first = logged_in.get("/")
    assert job_links(first) == newest_first[:JOBS_PER_PAGE]
    assert "Page 1 of 2" in first.content.decode() and 'href="?page=2"' in first.content.decode()
    second = logged_in.get("/", {"page": 2})
    assert job_links(second) == newest_first[JOBS_PER_PAGE:]
    assert job_links(logged_in.get("/", {"page": "99"})) == newest_first[JOBS_PER_PAGE:]  # the last page
    assert job_links(logged_in.get("/", {"page": "x"})) == newest_first[:JOBS_PER_PAGE]


def test_only_the_persons_own_jobs_are_shown(logged_in, user, content, style, make_user, upload):
    mine = make_jobs(user, content, style, 1)
    other = make_user()
    make_jobs(other, upload(other), upload(other, "style", "the_scream.jpg"), 2)
    assert job_links(logged_in.get("/")) == [str(mine[0].pk)]


def test_cards_show_the_status_and_the_result_or_else_the_content(logged_in, user, content, style):
    lifecycle.create_job(user, content, [style], {"size": 48})
    done = lifecycle.create_job(user, content, [style], {"size": 48})
    buffer = io.BytesIO()
    Image.new("RGB", (64, 40), "teal").save(buffer, format="PNG")
    result = default_storage.save(f"results/{done.pk}/result.png", ContentFile(buffer.getvalue()))
    StyleJob.objects.filter(pk=done.pk).update(status=StyleJob.Status.SUCCEEDED, result=result)
    html = logged_in.get("/").content.decode()
    assert f'src="/images/{content.pk}/thumbnail.jpg"' in html  # the queued one
    assert re.search(rf'src="/jobs/{done.pk}/thumbnail.jpg\?v=\w+"', html)
    assert 'class="badge badge-queued">Queued<' in html and 'class="badge badge-succeeded">Succeeded<' in html
    thumbnail = logged_in.get(f"/jobs/{done.pk}/thumbnail.jpg")
    assert thumbnail["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(b"".join(thumbnail.streaming_content))).size == (64, 40)  # never enlarged
