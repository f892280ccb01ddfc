"""POST/GET batches/ and batches/{id}/results.zip."""

import io
import zipfile

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from webapp.models import Batch, StyleJob

pytestmark = pytest.mark.django_db

Status = StyleJob.Status


@pytest.fixture
def pets(user, upload):
    """Four of Ada's images, named for the zip's entry names."""
    return {name: upload(user, colour, f"{name}.png")
            for name, colour in [("cat", (200, 0, 0)), ("dog", (0, 200, 0)), ("waves", (0, 0, 200)),
                                 ("stars", (90, 90, 0))]}


@pytest.fixture
def post_batch(api, sent, tiny_params, django_capture_on_commit_callbacks):
    def post(body, client=None):
        with django_capture_on_commit_callbacks(execute=True):
            return (client or api).post("/api/v1/batches/", {"params": tiny_params, **body}, format="json")

    return post


def ids(*images):
    return [str(image.pk) for image in images]


def test_contents_times_styles_makes_every_pair(post_batch, pets, sent):
    response = post_batch({"contents": ids(pets["cat"], pets["dog"]),
                           "styles": ids(pets["waves"], pets["stars"]), "name": "pets"})
    assert response.status_code == 202, response.content
    batch = Batch.objects.get(pk=response.json()["id"])
    jobs = StyleJob.objects.filter(batch=batch)
    assert len(response.json()["jobs"]) == 4 == jobs.count() == len(sent)
    pairs = {(job.content.original_name, job.ordered_styles()[0].original_name) for job in jobs}
    assert pairs == {("cat.png", "waves.png"), ("cat.png", "stars.png"), ("dog.png", "waves.png"),
                     ("dog.png", "stars.png")}


def test_explicit_pairs_take_per_item_overrides(post_batch, pets, tiny_params):
    response = post_batch({"pairs": [
        {"content": str(pets["cat"].pk), "styles": ids(pets["waves"])},
        {"content": str(pets["dog"].pk), "styles": ids(pets["stars"]), "params": {"iterations": 2}}]})
    assert response.status_code == 202, response.content
    by_content = {job.content.original_name: job for job in StyleJob.objects.all()}
    assert by_content["cat.png"].params["iterations"] == tiny_params["iterations"] and by_content["dog.png"].params["iterations"] == 2


def test_a_grid_makes_one_job_per_combination(post_batch, pets, settings):
    settings.JOBS_PER_USER = 10
    response = post_batch({"grid": {"content": str(pets["cat"].pk), "styles": ids(pets["waves"]),
                                    "values": {"style_weight": [1e3, 1e5], "tv_weight": [0.0, 1.0]}}})
    assert response.status_code == 202, response.content
    combos = {(job.params["style_weight"], job.params["tv_weight"]) for job in StyleJob.objects.all()}
    assert combos == {(1e3, 0.0), (1e3, 1.0), (1e5, 0.0), (1e5, 1.0)}


def test_a_batch_over_the_cap_is_429_and_creates_nothing(post_batch, pets, settings, sent):
    settings.JOBS_PER_USER = 3
    response = post_batch({"contents": ids(pets["cat"], pets["dog"]),
                           "styles": ids(pets["waves"], pets["stars"])})
    assert response.status_code == 429
    assert "Nothing was created" in response.json()["detail"]
    assert StyleJob.objects.count() == 0 and Batch.objects.count() == 0 and sent == []


def test_a_bad_option_in_one_item_is_400_naming_it(post_batch, pets):
    response = post_batch({"pairs": [{"content": str(pets["cat"].pk), "styles": ids(pets["waves"]),
                                      "params": {"iterations": -1}}]})
    assert response.status_code == 400 and "iterations" in response.json()["params"]


def test_exactly_one_way_of_pairing_must_be_given(post_batch, pets):
    response = post_batch({"contents": ids(pets["cat"]), "styles": ids(pets["waves"]),
                           "pairs": [{"content": str(pets["cat"].pk), "styles": ids(pets["waves"])}]})
    assert response.status_code == 400
    assert post_batch({}).status_code == 400


def test_another_persons_images_cannot_be_batched(post_batch, pets, other, upload):
    theirs = upload(other, (5, 5, 5))
    response = post_batch({"contents": ids(theirs), "styles": ids(pets["waves"])})
    assert response.status_code == 400 and "contents" in response.json()


def test_a_batch_shows_counts_progress_and_eta(api, post_batch, pets):
    batch_id = post_batch({"contents": ids(pets["cat"], pets["dog"]), "styles": ids(pets["waves"])}).json()["id"]
    first, second = StyleJob.objects.filter(batch_id=batch_id).order_by("created", "id")
    StyleJob.objects.filter(pk=first.pk).update(status=Status.SUCCEEDED, progress=1.0, elapsed_seconds=10.0)
    body = api.get(f"/api/v1/batches/{batch_id}/").json()
    assert body["counts"]["succeeded"] == 1 and body["counts"]["queued"] == 1
    assert body["progress"] == 0.5 and body["eta_seconds"] == 10.0
    assert body["jobs"] == [str(first.pk), str(second.pk)]
    assert api.get(f"/api/v1/jobs/?batch={batch_id}").json()["count"] == 2


def test_another_persons_batch_is_404(post_batch, pets, other_api):
    batch_id = post_batch({"contents": ids(pets["cat"]), "styles": ids(pets["waves"])}).json()["id"]
    assert other_api.get(f"/api/v1/batches/{batch_id}/").status_code == 404
    assert other_api.get(f"/api/v1/batches/{batch_id}/results.zip").status_code == 404


def test_the_zip_holds_the_finished_results_named_by_content_style_and_job(api, post_batch, pets):
    batch_id = post_batch({"contents": ids(pets["cat"], pets["dog"]), "styles": ids(pets["waves"])}).json()["id"]
    done, pending = StyleJob.objects.filter(batch_id=batch_id).order_by("created", "id")
    name = default_storage.save(f"results/{done.pk}/result.png", ContentFile(b"\x89PNG cat"))
    StyleJob.objects.filter(pk=done.pk).update(status=Status.SUCCEEDED, result=name)
    response = api.get(f"/api/v1/batches/{batch_id}/results.zip")
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert archive.namelist() == [f"cat__waves__{done.pk}.png"]
    assert archive.read(archive.namelist()[0]) == b"\x89PNG cat"
