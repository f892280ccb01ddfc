"""A file store that cannot be reached (botocore's errors, which are not OSErrors): the views answer
503 with Retry-After, not 500; a job fails retryably, not as an internal error; the checkpoint
loader does not start a job over (losing its work) when it merely cannot read the checkpoint now.
A file that is not there stays a 404. (tests/multimachine runs the same against a real S3 server.)"""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from tests.webapp.test_pages_job import done, logged_in  # noqa: F401 (fixtures)
from webapp.jobs import lifecycle, storage
from webapp.models import JobAttempt, StyleJob
from webapp.worker import run
from webapp.worker.tasks import run_style_job

pytestmark = pytest.mark.django_db

Status = StyleJob.Status
UNREACHABLE = EndpointConnectionError(endpoint_url="http://bucket.internal:9000/stylize")
REFUSED = ClientError({"Error": {"Code": "ServiceUnavailable"}, "ResponseMetadata": {"HTTPStatusCode": 503}},
                      "GetObject")


@pytest.fixture(params=[UNREACHABLE, REFUSED], ids=["unreachable", "503 from the store"])
def store_down(request, monkeypatch):
    def fail(*args, **kwargs):
        raise request.param

    monkeypatch.setattr(storage, "open_stream", fail)
    monkeypatch.setattr(storage.default_storage, "exists", fail)
    monkeypatch.setattr(storage.default_storage, "open", fail)
    return request.param


def test_file_views_answer_503_with_retry_after_while_the_store_is_down(logged_in, done, store_down):  # noqa: F811
    for url in (f"/jobs/{done.pk}/result.png", f"/jobs/{done.pk}/preview.png", f"/jobs/{done.pk}/thumbnail.jpg",
                f"/images/{done.content_id}/", f"/images/{done.content_id}/thumbnail.jpg"):
        response = logged_in.get(url)
        assert response.status_code == 503, url
        assert response["Retry-After"] and "try again" in response.content.decode()


def test_the_api_answers_503_in_json_while_the_store_is_down(done, store_down):  # noqa: F811
    from tests.api.conftest import client_for

    response = client_for(done.owner).get(f"/api/v1/jobs/{done.pk}/result/")
    assert response.status_code == 503 and response.json()["detail"].startswith("Stored files cannot be reached")


def test_a_missing_file_is_still_a_404(logged_in, done):  # noqa: F811
    storage.default_storage.delete(done.result.name)
    assert logged_in.get(f"/jobs/{done.pk}/result.png").status_code == 404


def run_message(job: StyleJob) -> str:
    return run_style_job.apply(args=[str(job.id)], task_id=job.task_id).get()


@pytest.fixture(autouse=True)
def no_heartbeat_thread(settings):
    settings.JOB_HEARTBEAT_SECONDS = 3600  # its own connection cannot see this test's rows


def test_a_job_whose_inputs_cannot_be_read_now_is_queued_again_not_failed_as_an_internal_error(
        queued_job, monkeypatch, django_capture_on_commit_callbacks):
    def unreachable(name):
        raise UNREACHABLE

    monkeypatch.setattr(storage, "open_image", unreachable)
    with django_capture_on_commit_callbacks(execute=True):
        assert run_message(queued_job) == Status.QUEUED
    job = StyleJob.objects.get(pk=queued_job.pk)
    assert job.error.startswith("A stored file could not be read or written.")  # the owner's plain sentence
    assert "EndpointConnectionError" in job.error_traceback and "Internal error" not in job.error
    assert job.attempt_log.get().outcome == JobAttempt.Outcome.RETRIED


def test_a_checkpoint_that_cannot_be_read_now_is_retried_later_not_thrown_away(queued_job, monkeypatch):
    job = lifecycle.claim(queued_job.id, "gpu0@box", task_id=queued_job.task_id)
    StyleJob.objects.filter(pk=job.pk).update(checkpoint=f"checkpoints/{job.pk}/a.pt")
    job.refresh_from_db()

    def unreachable(name):
        raise UNREACHABLE

    monkeypatch.setattr(storage, "load_checkpoint", unreachable)
    with pytest.raises(EndpointConnectionError):
        run._checkpoint_to_resume(job, job.config())
    def gone(name):
        raise FileNotFoundError(name)

    monkeypatch.setattr(storage, "load_checkpoint", gone)
    assert run._checkpoint_to_resume(job, job.config()) is None  # gone for good: start over
