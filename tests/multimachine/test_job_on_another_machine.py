"""A job submitted through the API runs on a worker on another machine, and the web serves its
result, preview, visualisations, thumbnails, the batch's zip and a patches picture (computed by
that worker) from the bucket; the bucket's objects are private, and no machine's local media
folder ever holds a job's file."""

from __future__ import annotations

import io
import time
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from tests.api.conftest import client_for
from tests.multimachine.machines import files_in
from tests.processes import finished, wait_for_job
from webapp.models import StyleJob

pytestmark = pytest.mark.django_db(transaction=True)  # the workers see what this process commits

Status = StyleJob.Status
PUBLIC = "http://acs.amazonaws.com/groups/global/AllUsers"


def body_of(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_a_job_sent_through_the_api_runs_on_another_machine_and_the_web_serves_its_files_from_the_bucket(
        user, sample_photo, bucket, machine, media_root):
    a = machine("a")
    api = client_for(user)

    def upload(kind, name):
        response = api.post("/api/v1/images/", {"file": SimpleUploadedFile(name, sample_photo(kind, name))},
                            format="multipart")
        assert response.status_code == 201, response.content
        return response.json()["id"]

    content, style = upload("content", "chelsea.png"), upload("style", "starry_night.jpg")
    response = api.post("/api/v1/batches/", {"contents": [content], "styles": [style],
                                             "params": {"size": 48, "scales": 1, "iterations": 8, "seed": 2}},
                        format="json")
    assert response.status_code == 202, response.content
    job = StyleJob.objects.get(pk=response.json()["jobs"][0])
    row = wait_for_job(job, finished, a)
    assert row.status == Status.SUCCEEDED and row.worker_host == a.node, a.tail()

    # The result, as the API serves it: the bytes stored in the bucket, streamed with their length.
    detail = api.get(f"/api/v1/jobs/{job.pk}/").json()
    result = api.get(detail["result_url"])
    key = f"{bucket.prefix}/{row.result.name}"
    assert result.status_code == 200 and body_of(result) == bucket.get(key)
    assert result["Content-Length"] == str(len(bucket.get(key)))
    for picture in detail["visualizations"]:
        served = api.get(picture["download_url"])
        assert served.status_code == 200 and body_of(served).startswith(b"\x89PNG"), picture["name"]
    assert {"gram", "patches", "loss"} <= {v["name"] for v in detail["visualizations"]}

    # The pages' views: preview, the gallery's thumbnail (made by the web, stored in the bucket),
    # the uploaded images and their thumbnails.
    browser = Client()
    browser.force_login(user)
    for url in (f"/jobs/{job.pk}/preview.png", f"/jobs/{job.pk}/thumbnail.jpg", f"/jobs/{job.pk}/result.png",
                f"/images/{content}/", f"/images/{content}/thumbnail.jpg"):
        served = browser.get(url)
        assert served.status_code == 200 and len(body_of(served)) > 100, url
    assert any(k.startswith(f"{bucket.prefix}/results/{job.pk}/thumbnail-") for k in bucket.keys())

    # The batch's zip, streamed entry by entry from the bucket.
    zipped = api.get(f"/api/v1/batches/{row.batch_id}/results.zip")
    archive = zipfile.ZipFile(io.BytesIO(body_of(zipped)))
    assert zipped.status_code == 200 and [archive.read(n) for n in archive.namelist()] == [bucket.get(key)]

    # The nine patches of a unit: the web only records the request; the worker computes it.
    deadline = time.monotonic() + 120
    while (patches := browser.get(f"/jobs/{job.pk}/patches.png", {"layer": "relu2_1", "unit": "3"})).status_code == 202:
        assert time.monotonic() < deadline, a.tail()
        time.sleep(0.2)
    assert patches.status_code == 200 and body_of(patches).startswith(b"\x89PNG"), (patches.content, a.tail())
    assert "top patches of relu2_1 unit 3 computed" in a.log()

    # Everything is in the bucket under S3_PREFIX, private; no local folder holds anything.
    keys = bucket.keys()
    assert keys and all(k.startswith(f"{bucket.prefix}/") for k in keys)
    # the checkpoints went with the success
    assert {k.split("/")[1] for k in keys} == {"uploads", "results", "thumbnails"}
    assert all(PUBLIC not in str(bucket.grants(k)) for k in keys)
    assert files_in(media_root) == [] and files_in(a.media_root) == []


def test_a_file_missing_from_the_bucket_is_a_404_not_a_500(user, bucket, upload):
    image = upload(user, "content")
    bucket.client.delete_object(Bucket=bucket.name, Key=f"{bucket.prefix}/{image.file.name}")
    browser = Client()
    browser.force_login(user)
    assert browser.get(f"/images/{image.pk}/").status_code == 404
    assert browser.get(f"/images/{image.pk}/thumbnail.jpg").status_code == 404


def test_retention_finds_orphans_in_the_bucket_under_its_prefix_and_keeps_what_rows_refer_to(
        user, bucket, upload, settings):
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from webapp.jobs import retention

    settings.RETENTION_DAYS = 1
    settings.RETENTION_ORPHAN_GRACE_SECONDS = 0  # every file is old enough here
    image = upload(user, "content")
    orphan = default_storage.save("checkpoints/33333333-3333-3333-3333-333333333333/lost.pt", ContentFile(b"x"))
    time.sleep(1.1)  # the bucket's modification times have whole seconds
    assert retention.sweep().orphans == [orphan]
    assert bucket.keys() == [f"{bucket.prefix}/{image.file.name}"]
