"""The bucket becomes unreachable (its address refuses connections, as a server that is down or a
network that is gone does): a running job fails retryably, not as an internal error, and resumes
from its checkpoint once the bucket is back; meanwhile the web answers 503 for every file view,
pages' and API's, with a Retry-After, and 200 again afterwards."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.api.conftest import client_for
from tests.multimachine.machines import files_in
from tests.processes import finished, wait_for_job
from webapp.jobs import lifecycle
from webapp.models import Batch, JobAttempt, StyleJob

pytestmark = pytest.mark.django_db(transaction=True)

Status = StyleJob.Status


def file_views(job: StyleJob) -> dict[str, str]:
    return {"page result": f"/jobs/{job.pk}/result.png", "page thumbnail": f"/jobs/{job.pk}/thumbnail.jpg",
            "visualisation": f"/jobs/{job.pk}/visualizations/gram.png",
            "image": f"/images/{job.content_id}/", "image thumbnail": f"/images/{job.content_id}/thumbnail.jpg",
            "api result": f"/api/v1/jobs/{job.pk}/result/", "api zip": f"/api/v1/batches/{job.batch_id}/results.zip"}


def test_with_the_bucket_unreachable_a_job_fails_retryably_and_resumes_when_it_is_back_and_files_answer_503(
        bucket, link, machine, person, images, media_root, settings):
    settings.JOB_MAX_ATTEMPTS = 5  # however the outage and the retries' delays fall, it is not the last attempt
    a = machine("a")
    content, style = images
    params = {"size": 32, "scales": 1, "seed": 3}
    done = lifecycle.create_job(person, content, [style], {**params, "iterations": 3},
                                batch=Batch.objects.create(owner=person))
    assert wait_for_job(done, finished, a).status == Status.SUCCEEDED, a.tail()
    browser, api = Client(), client_for(person)
    browser.force_login(person)

    def get(url):
        return (api if "/api/" in url else browser).get(url)

    assert {name: get(url).status_code for name, url in file_views(done).items()} == dict.fromkeys(file_views(done), 200)

    job = lifecycle.create_job(person, content, [style], {**params, "iterations": 120})
    wait_for_job(job, lambda r: r.status == Status.RUNNING and r.checkpoint.name and r.step >= 3, a)
    link.cut()
    seen: list[StyleJob] = []
    row = wait_for_job(job, lambda r: r.status != Status.RUNNING, a, seen=seen)
    assert row.status == Status.QUEUED and row.attempts == 1, a.tail()  # to be retried, not failed
    assert row.error.startswith("A stored file could not be read or written") and "Internal error" not in row.error
    assert row.attempt_log.get(number=1).outcome == JobAttempt.Outcome.RETRIED

    answers = {name: get(url) for name, url in file_views(done).items()}
    assert {name: r.status_code for name, r in answers.items()} == dict.fromkeys(answers, 503)
    assert all(r["Retry-After"] for r in answers.values())
    assert answers["api result"].json()["detail"].startswith("Stored files cannot be reached")

    link.restore()
    row = wait_for_job(job, finished, a, timeout=240, seen=seen)
    assert row.status == Status.SUCCEEDED, a.tail()
    assert f"job {job.pk}: resuming from its checkpoint" in a.log(), a.tail()
    assert row.attempts >= 2 and row.attempt_log.last().outcome == JobAttempt.Outcome.SUCCEEDED
    assert {name: get(url).status_code for name, url in file_views(done).items()} == dict.fromkeys(file_views(done), 200)
    assert files_in(media_root) == [] and files_in(a.media_root) == []
