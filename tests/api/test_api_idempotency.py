"""The Idempotency-Key header: a retried POST creates nothing new and gets the first answer."""

import pytest

from webapp.api.models import IdempotencyKey
from webapp.models import Batch, StyleJob

pytestmark = pytest.mark.django_db


@pytest.fixture
def body(content, style, tiny_params):
    return {"content": str(content.pk), "styles": [str(style.pk)], "params": tiny_params}


def test_the_same_key_twice_creates_one_job(api, body, sent):
    first = api.post("/api/v1/jobs/", body, format="json", HTTP_IDEMPOTENCY_KEY="abc-1")
    again = api.post("/api/v1/jobs/", body, format="json", HTTP_IDEMPOTENCY_KEY="abc-1")
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json() and again["Location"] == first["Location"]
    assert again["Idempotent-Replayed"] == "true"
    assert StyleJob.objects.count() == 1


def test_different_keys_create_different_jobs(api, body, sent):
    api.post("/api/v1/jobs/", body, format="json", HTTP_IDEMPOTENCY_KEY="one")
    api.post("/api/v1/jobs/", body, format="json", HTTP_IDEMPOTENCY_KEY="two")
    assert StyleJob.objects.count() == 2


def test_a_key_belongs_to_one_person(api, other_api, body, sent, other, upload, tiny_params):
    api.post("/api/v1/jobs/", body, format="json", HTTP_IDEMPOTENCY_KEY="shared")
    theirs = {"content": str(upload(other, (1, 1, 1)).pk), "styles": [str(upload(other, (2, 2, 2)).pk)],
              "params": tiny_params}
    assert other_api.post("/api/v1/jobs/", theirs, format="json", HTTP_IDEMPOTENCY_KEY="shared").status_code == 202
    assert StyleJob.objects.count() == 2


def test_a_failed_request_is_not_remembered(api, body, sent, settings):
    settings.JOBS_PER_USER = 0 + 1
    api.post("/api/v1/jobs/", body, format="json")
    assert api.post("/api/v1/jobs/", body, format="json", HTTP_IDEMPOTENCY_KEY="k").status_code == 429
    assert not IdempotencyKey.objects.exists()


def test_a_key_reused_for_another_url_is_422(api, body, sent, content, style, tiny_params):
    api.post("/api/v1/jobs/", body, format="json", HTTP_IDEMPOTENCY_KEY="k")
    response = api.post("/api/v1/batches/", {"contents": [str(content.pk)], "styles": [str(style.pk)],
                                             "params": tiny_params}, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert response.status_code == 422 and Batch.objects.count() == 0


def test_a_retried_batch_creates_one_batch(api, sent, content, style, tiny_params):
    body = {"contents": [str(content.pk)], "styles": [str(style.pk)], "params": tiny_params}
    first = api.post("/api/v1/batches/", body, format="json", HTTP_IDEMPOTENCY_KEY="b")
    again = api.post("/api/v1/batches/", body, format="json", HTTP_IDEMPOTENCY_KEY="b")
    assert again.json() == first.json() and Batch.objects.count() == 1 and StyleJob.objects.count() == 1


def test_a_retried_upload_is_replayed(api, png):
    from django.core.files.uploadedfile import SimpleUploadedFile

    first = api.post("/api/v1/images/", {"file": SimpleUploadedFile("a.png", png())}, format="multipart",
                     HTTP_IDEMPOTENCY_KEY="u")
    again = api.post("/api/v1/images/", {"file": SimpleUploadedFile("a.png", png())}, format="multipart",
                     HTTP_IDEMPOTENCY_KEY="u")
    assert first.status_code == again.status_code == 201 and again["Idempotent-Replayed"] == "true"
