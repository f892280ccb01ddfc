"""Uploads are decoded, checked and re-encoded, and stored under UUID names only."""

from __future__ import annotations

import io
import re

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

import stylize
from webapp.jobs import storage
from tests.inputs import GPS_IFD, jpeg_with_exif
from webapp.models import StyleImage

pytestmark = pytest.mark.django_db

UUID_UPLOAD = re.compile(r"^uploads/[0-9a-f]{32}\.(png|jpg)$")


def stored(image: StyleImage) -> Image.Image:
    with default_storage.open(image.file.name, "rb") as f:
        img = Image.open(io.BytesIO(f.read()))
        img.load()
    return img


def test_stored_names_are_uuids_under_uploads(user, upload):
    image = upload(user, "content", "chelsea.png")
    assert UUID_UPLOAD.match(image.file.name)
    assert default_storage.exists(image.file.name)


def test_a_client_name_with_a_path_never_reaches_the_storage(user, upload, media_root):
    image = upload(user, "content", "chelsea.png", client_name="../../etc/x.png")
    assert UUID_UPLOAD.match(image.file.name)
    assert image.original_name == "x.png"
    assert not (media_root.parent / "etc").exists()
    assert all(path.is_relative_to(media_root) for path in media_root.rglob("*"))


@pytest.mark.parametrize("client_name, shown", [
    ("..\\..\\windows\\evil.jpg", "evil.jpg"),
    ("photo\x00.png\n", "photo.png"),
    ("<script>alert(1)</script>.png", "script_.png"),
    ("", ""),
])
def test_original_names_are_sanitised_for_display(client_name, shown):
    assert storage.sanitise_name(client_name) == shown


def test_exif_orientation_is_applied_and_gps_is_stripped(user):
    data = jpeg_with_exif(orientation=6)
    assert Image.open(io.BytesIO(data)).getexif().get_ifd(GPS_IFD)  # the upload does carry a location
    image = storage.store_upload(user, SimpleUploadedFile("holiday.jpg", data))
    img = stored(image)
    assert (image.width, image.height) == img.size == (40, 64)  # turned upright
    assert not img.getexif()
    assert "exif" not in img.info
    top, bottom = img.getpixel((20, 5)), img.getpixel((20, 58))
    assert top[0] > 150 and bottom[0] < 100  # the red half is now on top (rotated 90° clockwise)


def test_a_lossy_photo_is_stored_as_jpeg_and_a_png_stays_png(user, upload):
    assert upload(user, "style", "starry_night.jpg", format="JPEG").file.name.endswith(".jpg")
    assert upload(user, "content", "chelsea.png", format="PNG").file.name.endswith(".png")


def test_an_image_with_transparency_is_stored_as_png(user):
    img = Image.new("RGBA", (32, 32), (10, 200, 10, 128))
    out = io.BytesIO()
    img.save(out, format="WEBP", lossless=False)
    image = storage.store_upload(user, SimpleUploadedFile("glass.webp", out.getvalue()))
    assert image.file.name.endswith(".png")
    assert stored(image).mode == "RGBA"


def test_identical_files_are_stored_once_per_owner(user, make_user, sample_photo):
    data = sample_photo("content", "chelsea.png")
    first = storage.store_upload(user, SimpleUploadedFile("a.png", data))
    again = storage.store_upload(user, SimpleUploadedFile("renamed.png", data))
    someone_else = storage.store_upload(make_user(), SimpleUploadedFile("a.png", data))
    assert again.pk == first.pk
    assert someone_else.pk != first.pk
    assert StyleImage.objects.count() == 2


def test_it_rejects_a_file_over_the_byte_limit(user, settings, sample_photo):
    settings.UPLOAD_MAX_BYTES = 1000
    with pytest.raises(storage.UploadTooLarge, match="larger than the limit"):
        storage.store_upload(user, SimpleUploadedFile("big.png", sample_photo("content", "chelsea.png", 200)))
    assert not StyleImage.objects.exists()


def test_it_rejects_an_image_over_the_pixel_limit_with_the_engines_message(user, settings, sample_photo):
    settings.UPLOAD_MAX_PIXELS = 1000
    with pytest.raises(stylize.ImageTooLarge, match="'big.png' is .* more than the limit of 1,000 pixels"):
        storage.store_upload(user, SimpleUploadedFile("big.png", sample_photo("content", "chelsea.png", 64)))


def test_it_rejects_a_file_that_is_not_an_image(user, media_root):
    with pytest.raises(stylize.ImageError, match="'notes.png' is not an image"):
        storage.store_upload(user, SimpleUploadedFile("notes.png", b"hello, not a picture"))
    assert not StyleImage.objects.exists()
    assert not list(media_root.rglob("*.*"))


def test_deleting_a_jobs_files_keeps_its_input_images(queued_job, media_root):
    preview = storage.save_preview(queued_job, Image.new("RGB", (8, 8)))
    checkpoint = storage.save_checkpoint(queued_job, b"state")
    artifacts = storage.save_artifacts(queued_job, {"gram": Image.new("RGB", (8, 8))})
    queued_job.preview, queued_job.checkpoint = preview, checkpoint
    storage.delete_job_files(queued_job)
    for name in (preview, checkpoint, *artifacts.values()):
        assert not default_storage.exists(name)
    assert not (media_root / "results" / str(queued_job.id)).exists()
    assert default_storage.exists(queued_job.content.file.name)


def test_job_file_names_live_under_the_jobs_uuid(queued_job):
    preview = storage.save_preview(queued_job, Image.new("RGB", (8, 8)))
    checkpoint = storage.save_checkpoint(queued_job, b"state")
    assert re.match(rf"^results/{queued_job.id}/preview-[0-9a-f]{{32}}\.png$", preview)
    assert re.match(rf"^checkpoints/{queued_job.id}/[0-9a-f]{{32}}\.pt$", checkpoint)
