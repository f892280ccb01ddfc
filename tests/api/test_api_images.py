"""POST/GET images/: upload, de-duplication, limits, and people see only their own."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from webapp.models import StyleImage

pytestmark = pytest.mark.django_db


def post(api, data: bytes, name="photo.png"):
    return api.post("/api/v1/images/", {"file": SimpleUploadedFile(name, data)}, format="multipart")


def test_it_stores_an_upload_and_answers_201_with_its_id(api, png, user):
    response = post(api, png())
    assert response.status_code == 201, response.content
    image = StyleImage.objects.get(pk=response.json()["id"])
    assert image.owner == user and response.json()["width"] == 48
    assert response["Location"].endswith(f"/api/v1/images/{image.pk}/")


def test_the_same_content_again_returns_the_existing_id_with_200(api, png):
    first = post(api, png())
    again = post(api, png(), name="renamed.png")
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert StyleImage.objects.count() == 1


def test_a_file_that_is_not_an_image_is_415(api):
    response = post(api, b"certainly not a picture", name="notes.txt")
    assert response.status_code == 415
    assert "detail" in response.json()


def test_a_file_over_the_size_limit_is_413(api, png, settings):
    settings.UPLOAD_MAX_BYTES = 100
    assert post(api, png()).status_code == 413


def test_a_picture_over_the_pixel_limit_is_413(api, png, settings):
    settings.UPLOAD_MAX_PIXELS = 100
    assert post(api, png()).status_code == 413


def test_an_upload_without_a_file_is_400_naming_the_field(api):
    response = api.post("/api/v1/images/", {}, format="multipart")
    assert response.status_code == 400 and "file" in response.json()


def test_the_list_holds_only_the_persons_own_images(api, user, other, upload):
    mine = upload(user, (1, 2, 3))
    upload(other, (4, 5, 6))
    body = api.get("/api/v1/images/").json()
    assert [item["id"] for item in body["results"]] == [str(mine.pk)]


def test_another_persons_image_is_404(api, other, upload):
    theirs = upload(other)
    assert api.get(f"/api/v1/images/{theirs.pk}/").status_code == 404


def test_one_image_can_be_read_back(api, content):
    body = api.get(f"/api/v1/images/{content.pk}/").json()
    assert body["id"] == str(content.pk) and body["original_name"] == "chelsea.png"
