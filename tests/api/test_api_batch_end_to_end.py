"""A batch of 2 contents × 2 styles through the API, run by a real celery worker on a real
redis-server with the real engine (tiny images, 3 iterations), downloaded as one zip."""

import io
import time
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile


pytestmark = pytest.mark.django_db(transaction=True)  # the worker must see what this process commits


def test_a_batch_of_two_contents_by_two_styles_runs_end_to_end_and_zips_four_results(
        user, token_client, sample_photo, shared_media, broker, worker):  # noqa: F811
    api = token_client(user)

    def upload(kind, name):
        response = api.post("/api/v1/images/", {"file": SimpleUploadedFile(name, sample_photo(kind, name))},
                            format="multipart")
        assert response.status_code == 201, response.content
        return response.json()["id"]

    contents = [upload("content", "chelsea.png"), upload("content", "astronaut.png")]
    styles = [upload("style", "starry_night.jpg"), upload("style", "the_scream.jpg")]
    response = api.post("/api/v1/batches/", {
        "contents": contents, "styles": styles,
        "params": {"size": 48, "scales": 1, "iterations": 3, "seed": 1}}, format="json")
    assert response.status_code == 202, response.content
    batch_url = response.json()["url"]

    deadline = time.monotonic() + 240
    while True:
        body = api.get(batch_url).json()
        if body["counts"]["succeeded"] + body["counts"]["failed"] + body["counts"]["cancelled"] == 4:
            break
        assert worker.process.poll() is None, worker.tail()
        assert time.monotonic() < deadline, f"batch not done: {body}\n{worker.tail()}"
        time.sleep(0.25)
    assert body["counts"]["succeeded"] == 4, worker.tail()
    assert body["progress"] == 1.0 and body["eta_seconds"] == 0.0

    zipped = api.get(body["results_url"])
    assert zipped.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(b"".join(zipped.streaming_content)))
    names = sorted(archive.namelist())
    assert len(names) == 4
    assert {name.split("__")[0] for name in names} == {"chelsea", "astronaut"}
    assert {name.split("__")[1] for name in names} == {"starry_night", "the_scream"}
    assert set(name.split("__")[2].removesuffix(".png") for name in names) == set(body["jobs"])
    assert all(archive.read(name).startswith(b"\x89PNG") for name in names)
