"""POST/GET/DELETE jobs/ and jobs/{id}/cancel/: the same lifecycle as the pages."""

import json

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile

from webapp.models import JobArtifact, StyleImage, StyleJob

pytestmark = pytest.mark.django_db

Status = StyleJob.Status


@pytest.fixture
def post_job(api, content, style, tiny_params, sent, django_capture_on_commit_callbacks):
    def post(client=None, **overrides):
        body = {"content": str(content.pk), "styles": [str(style.pk)], "params": tiny_params, **overrides}
        with django_capture_on_commit_callbacks(execute=True):
            return (client or api).post("/api/v1/jobs/", body, format="json")

    return post


def succeed(job: StyleJob) -> StyleJob:
    """Mark a job succeeded with a stored result and one visualisation (what a worker leaves)."""
    from django.core.files.base import ContentFile

    result = default_storage.save(f"results/{job.pk}/result.png", ContentFile(b"\x89PNG result"))
    loss = default_storage.save(f"results/{job.pk}/loss.png", ContentFile(b"\x89PNG loss"))
    StyleJob.objects.filter(pk=job.pk).update(status=Status.SUCCEEDED, result=result, progress=1.0)
    JobArtifact.objects.create(job=job, name="loss", file=loss)
    job.refresh_from_db()
    return job


def test_it_queues_a_job_and_answers_202_with_its_url(post_job, sent, user):
    response = post_job()
    assert response.status_code == 202, response.content
    job = StyleJob.objects.get(pk=response.json()["id"])
    assert job.owner == user and job.status == Status.QUEUED and job.params["size"] == 48
    assert response.json()["url"] == response["Location"] and response["Location"].endswith(f"/jobs/{job.pk}/")
    assert [call["args"] for call in sent] == [[str(job.pk)]]  # through create_job's on-commit send


def test_it_takes_the_images_as_multipart_files(api, png, sent, tiny_params):
    response = api.post("/api/v1/jobs/", {
        "content_file": SimpleUploadedFile("c.png", png((1, 1, 1))),
        "style_files": [SimpleUploadedFile("s1.png", png((2, 2, 2))), SimpleUploadedFile("s2.png", png((3, 3, 3)))],
        "params": json.dumps(tiny_params)}, format="multipart")
    assert response.status_code == 202, response.content
    job = StyleJob.objects.get(pk=response.json()["id"])
    assert len(job.ordered_styles()) == 2 and StyleImage.objects.count() == 3


def test_a_preset_is_the_base_of_the_overrides(post_job):
    response = post_job(preset="fast", params={"iterations": 5})
    job = StyleJob.objects.get(pk=response.json()["id"])
    assert job.params["size"] == 256 and job.params["iterations"] == 5


def test_a_bad_option_is_400_naming_it(post_job, settings):
    response = post_job(params={"size": settings.OUTPUT_MAX_SIZE + 1})
    assert response.status_code == 400
    assert "size" in response.json()["params"]
    assert StyleJob.objects.count() == 0


@pytest.mark.parametrize("params", [{"style_layers": {"relu1_1": 0.5}},
                                    {"style_layers": {"relu1_1": 5}, "layer_normalisation": "seed"}])
def test_a_layer_weight_within_the_bound_of_its_normalisation_is_accepted(post_job, tiny_params, params):
    response = post_job(params={**tiny_params, **params})
    assert response.status_code == 202, response.content
    job = StyleJob.objects.get(pk=response.json()["id"])
    assert job.params["style_layers"] == {"relu1_1": params["style_layers"]["relu1_1"]}
    assert job.params["layer_normalisation"] == params.get("layer_normalisation", "balanced")


def test_a_layer_weight_over_the_bound_of_balanced_normalisation_is_400_naming_the_bound(post_job, tiny_params):
    response = post_job(params={**tiny_params, "style_layers": {"relu1_1": 5}})
    assert response.status_code == 400
    assert response.json()["params"]["style_layers"] == ["weight of relu1_1 must be between 0 and 1"]
    assert StyleJob.objects.count() == 0


def test_an_unknown_option_is_400_naming_it(post_job):
    response = post_job(params={"colour": "blue"})
    assert response.status_code == 400 and "colour" in response.json()["params"]


def test_an_unknown_preset_is_400(post_job):
    assert "preset" in post_job(preset="nope").json()


def test_content_must_be_given_exactly_once(api, style, sent):
    response = api.post("/api/v1/jobs/", {"styles": [str(style.pk)]}, format="json")
    assert response.status_code == 400 and "content" in response.json()


def test_another_persons_image_cannot_be_used(post_job, other, upload):
    theirs = upload(other, (9, 9, 9))
    response = post_job(styles=[str(theirs.pk)])
    assert response.status_code == 400 and "styles" in response.json()


def test_past_the_cap_it_is_429_with_a_message(post_job, settings):
    settings.JOBS_PER_USER = 2
    assert [post_job().status_code for _ in range(3)] == [202, 202, 429]
    assert StyleJob.objects.count() == 2


def test_the_list_filters_by_status_and_is_paginated(api, post_job):
    first = post_job().json()["id"]
    post_job()
    StyleJob.objects.filter(pk=first).update(status=Status.FAILED)
    body = api.get("/api/v1/jobs/?status=failed").json()
    assert body["count"] == 1 and body["results"][0]["id"] == first
    assert api.get("/api/v1/jobs/").json()["count"] == 2
    assert api.get("/api/v1/jobs/?status=bogus").status_code == 400


def test_the_list_filters_by_batch(api, post_job):
    post_job()
    assert api.get("/api/v1/jobs/?batch=00000000-0000-0000-0000-000000000000").json()["count"] == 0
    assert api.get("/api/v1/jobs/?batch=not-a-uuid").status_code == 400


def test_a_job_shows_status_progress_and_result_urls(api, post_job):
    job = succeed(StyleJob.objects.get(pk=post_job().json()["id"]))
    body = api.get(f"/api/v1/jobs/{job.pk}/").json()
    assert body["status"] == "succeeded" and body["progress"] == 1.0
    assert body["result_url"].endswith(f"/api/v1/jobs/{job.pk}/result/")
    assert [v["name"] for v in body["visualizations"]] == ["loss"]
    download = api.get(body["result_url"])
    assert download.status_code == 200 and b"".join(download.streaming_content) == b"\x89PNG result"
    artifact = api.get(body["visualizations"][0]["download_url"])
    assert artifact.status_code == 200


def test_the_result_of_an_unfinished_job_is_404(api, post_job):
    job_id = post_job().json()["id"]
    assert api.get(f"/api/v1/jobs/{job_id}/result/").status_code == 404
    assert api.get(f"/api/v1/jobs/{job_id}/artifacts/loss/").status_code == 404


def test_another_persons_job_is_404_everywhere(post_job, other_api):
    job_id = post_job().json()["id"]
    assert other_api.get(f"/api/v1/jobs/{job_id}/").status_code == 404
    assert other_api.post(f"/api/v1/jobs/{job_id}/cancel/").status_code == 404
    assert other_api.delete(f"/api/v1/jobs/{job_id}/").status_code == 404
    assert other_api.get(f"/api/v1/jobs/{job_id}/result/").status_code == 404
    assert other_api.get("/api/v1/jobs/").json()["count"] == 0


def test_cancel_stops_a_queued_job(api, post_job):
    job_id = post_job().json()["id"]
    response = api.post(f"/api/v1/jobs/{job_id}/cancel/")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"


def test_cancelling_a_finished_job_is_409(api, post_job):
    job = succeed(StyleJob.objects.get(pk=post_job().json()["id"]))
    assert api.post(f"/api/v1/jobs/{job.pk}/cancel/").status_code == 409


def test_delete_removes_the_job_and_its_files(api, post_job, django_capture_on_commit_callbacks):
    job = succeed(StyleJob.objects.get(pk=post_job().json()["id"]))
    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(f"/api/v1/jobs/{job.pk}/").status_code == 204
    assert not StyleJob.objects.filter(pk=job.pk).exists()
    assert not default_storage.exists(f"results/{job.pk}/result.png")
    assert StyleImage.objects.count() == 2  # the inputs stay


def test_deleting_a_queued_job_cancels_it_first(api, post_job):
    job_id = post_job().json()["id"]
    assert api.delete(f"/api/v1/jobs/{job_id}/").status_code == 204
    assert not StyleJob.objects.filter(pk=job_id).exists()


def test_deleting_a_running_job_is_409_and_asks_it_to_stop(api, post_job):
    from django.utils import timezone

    job_id = post_job().json()["id"]
    StyleJob.objects.filter(pk=job_id).update(status=Status.RUNNING, last_heartbeat=timezone.now())
    assert api.delete(f"/api/v1/jobs/{job_id}/").status_code == 409
    assert StyleJob.objects.get(pk=job_id).cancel_requested


def test_put_is_not_offered(api, post_job):
    job_id = post_job().json()["id"]
    assert api.put(f"/api/v1/jobs/{job_id}/", {}, format="json").status_code == 405


def test_a_job_with_a_content_file_that_is_not_an_image_is_415(api, style, sent):
    response = api.post("/api/v1/jobs/", {"content_file": SimpleUploadedFile("c.txt", b"plain text"),
                                          "styles": [str(style.pk)]}, format="multipart")
    assert response.status_code == 415 and StyleJob.objects.count() == 0


def test_a_job_with_a_style_file_over_the_size_limit_is_413(api, content, png, sent, settings):
    settings.UPLOAD_MAX_BYTES = 100
    response = api.post("/api/v1/jobs/", {"content": str(content.pk),
                                          "style_files": [SimpleUploadedFile("s.png", png((7, 7, 7)))]},
                        format="multipart")
    assert response.status_code == 413 and StyleJob.objects.count() == 0


def test_files_of_a_refused_job_stay_as_images_to_reuse(api, post_job, png, settings, sent):
    settings.JOBS_PER_USER = 1
    post_job()
    response = api.post("/api/v1/jobs/", {"content_file": SimpleUploadedFile("new.png", png((8, 8, 8))),
                                          "style_files": [SimpleUploadedFile("s.png", png((9, 9, 9)))]},
                        format="multipart")
    assert response.status_code == 429
    assert StyleImage.objects.filter(original_name="new.png").exists()
