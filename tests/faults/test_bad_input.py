"""Bad input, through the new-job page and the REST API: each a clear 4xx that says what is wrong
(and, for params, which field), and nothing stored. And the tricky files that are fine: stored
re-encoded, upright, without metadata, under a UUID name."""

from __future__ import annotations

import hashlib
import html
import io
import json
import re
import time

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image, PngImagePlugin

from tests import inputs
import stylize
from tests.api.conftest import api  # noqa: F401 (a fixture: Ada's token client)
from webapp.jobs import storage
from webapp.models import StyleImage, StyleJob

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media_root")]

ROUTES = ("new-job page", "images API", "jobs API")
UUID_PNG = re.compile(r"^uploads/[0-9a-f]{32}\.png$")


@pytest.fixture
def style(user):
    """A style image Ada uploaded earlier, so the upload under test is the only new thing."""
    return storage.store_upload(user, SimpleUploadedFile("waves.png", inputs.png(colour=(20, 40, 200))))


@pytest.fixture
def browser(client, user, sent):
    client.force_login(user)
    return client


@pytest.fixture
def nothing_stored(media_root, style):
    """nothing_stored() after the request: no job, no image beyond those there before, no new file."""
    images, files = set(StyleImage.objects.values_list("pk", flat=True)), inputs.files_under(media_root)

    def check():
        assert not StyleJob.objects.exists()
        assert set(StyleImage.objects.values_list("pk", flat=True)) == images
        assert inputs.files_under(media_root) == files

    return check


@pytest.fixture
def send(browser, api, style):  # noqa: F811 (api is the fixture imported above)
    """send(route, filename, data) -> the response to one upload as the content image, its file
    name sent exactly as given (raw multipart)."""

    def post(route: str, filename: str, data: bytes):
        if route == "new-job page":
            fields = {**inputs.form_data(), "style_images": str(style.pk)}
            body, content_type = inputs.multipart(fields, {"content_file": (filename, data)})
            return browser.generic("POST", "/new/", body, content_type=content_type)
        if route == "images API":
            body, content_type = inputs.multipart({}, {"file": (filename, data)})
            return api.generic("POST", "/api/v1/images/", body, content_type=content_type)
        fields = {"styles": str(style.pk), "params": json.dumps({"size": 48, "scales": 1, "iterations": 2})}
        body, content_type = inputs.multipart(fields, {"content_file": (filename, data)})
        return api.generic("POST", "/api/v1/jobs/", body, content_type=content_type)

    return post


def page_error(response, field: str) -> str:
    """The message the new-job page shows next to the input `field` ("" if none)."""
    found = re.search(rf'id="id_{field}_error">(.*?)</p>', response.content.decode(), re.S)
    return html.unescape(found.group(1)).strip() if found else ""


def message_of(route: str, response) -> str:
    return page_error(response, "content_file") if route == "new-job page" else response.json()["detail"]


def stored_picture(image: StyleImage) -> Image.Image:
    with default_storage.open(image.file.name, "rb") as f:
        picture = Image.open(io.BytesIO(f.read()))
        picture.load()
    return picture


# -- files that are not usable images ---------------------------------------------------------

BAD_FILES = {
    "truncated JPEG": ("holiday.jpg", inputs.truncated_jpeg(), 415, "truncated or corrupt"),
    "text file named .png": ("notes.png", inputs.TEXT, 415, "is not an image"),
    "SVG": ("drawing.svg", inputs.SVG, 415, "is not an image"),
    "HTML": ("page.html", inputs.HTML, 415, "is not an image"),
    "PNG header claiming 30000 x 30000": ("huge.png", inputs.png_header_claiming(30_000, 30_000), 413,
                                          "is 30000x30000 (900,000,000 pixels), more than the limit"),
}


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("case", BAD_FILES)
def test_a_file_that_is_not_a_usable_image_is_refused_with_a_message_and_nothing_stored(
        send, nothing_stored, route, case):
    filename, data, status, reason = BAD_FILES[case]
    response = send(route, filename, data)
    assert response.status_code == status, response.content[:500]
    message = message_of(route, response)
    assert f"'{filename}'" in message and reason in message
    nothing_stored()


def test_the_30000_pixel_png_is_refused_from_its_header_without_decoding(user, monkeypatch):
    loads = []
    real_load = PngImagePlugin.PngImageFile.load
    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", lambda self: loads.append(self) or real_load(self))
    started = time.perf_counter()
    with pytest.raises(stylize.ImageTooLarge, match="30000x30000"):
        storage.store_upload(user, SimpleUploadedFile("huge.png", inputs.png_header_claiming(30_000, 30_000)))
    assert not loads  # never asked for its pixels (2.7 GB of them)
    assert time.perf_counter() - started < 1.0
    # Below Pillow's own bomb limit, the server's UPLOAD_MAX_PIXELS refuses it just as early.
    with pytest.raises(stylize.ImageTooLarge, match="6000x6000 .* more than the limit of 25,000,000"):
        storage.store_upload(user, SimpleUploadedFile("big.png", inputs.png_header_claiming(6000, 6000)))
    assert not loads


# -- too large --------------------------------------------------------------------------------

@pytest.mark.parametrize("route", ROUTES)
def test_a_file_over_the_upload_limit_is_413_with_a_message(send, nothing_stored, settings, route):
    settings.UPLOAD_MAX_BYTES = 1000
    data = inputs.noisy_jpeg((96, 96))
    assert len(data) > 4000
    response = send(route, "big.jpg", data)
    assert response.status_code == 413
    assert "'big.jpg' is larger than the limit of 0.001 MB" in message_of(route, response)
    nothing_stored()


@pytest.mark.parametrize("limit, status", [(100_000, 201), (1000, 413)])
def test_an_upload_spooled_to_a_temporary_file_is_checked_the_same(api, settings, limit, status):  # noqa: F811
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 100  # Django writes any larger file to disk first
    settings.UPLOAD_MAX_BYTES = limit
    data = inputs.noisy_jpeg((96, 96))
    body, content_type = inputs.multipart({}, {"file": ("big.jpg", data)})
    response = api.generic("POST", "/api/v1/images/", body, content_type=content_type)
    assert response.status_code == status
    assert StyleImage.objects.filter(sha256=hashlib.sha256(data).hexdigest()).exists() == (status == 201)


@pytest.fixture
def small_request_limits(settings):
    """Requests of at most 1000 bytes of form fields and 1000 bytes per file: a multipart body over
    (1 + JOB_MAX_STYLES) * 1000 + 1000 bytes is refused before it is read."""
    settings.UPLOAD_MAX_BYTES = 1000
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    settings.JOB_MAX_STYLES = 1


@pytest.mark.parametrize("route", ROUTES)
def test_a_request_body_over_the_limit_is_413_before_it_is_read(send, nothing_stored, small_request_limits, route):
    response = send(route, "big.jpg", inputs.noisy_jpeg((128, 128)))
    assert response.status_code == 413
    text = response.json()["detail"] if route != "new-job page" else response.content.decode()
    assert "too large" in text and "at most 0.001 MB per image" in text
    nothing_stored()


@pytest.mark.parametrize("url", ["/api/v1/jobs/", "/api/v1/batches/"])
def test_a_json_body_over_djangos_data_limit_is_413_not_400(api, nothing_stored, small_request_limits, url):  # noqa: F811
    body = json.dumps({"params": {"size": 48}, "name": "x" * 5000})
    response = api.post(url, body, content_type="application/json")
    assert response.status_code == 413 and "too large" in response.json()["detail"]
    nothing_stored()


def test_a_form_post_over_djangos_data_limit_is_413_not_400(browser, nothing_stored, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = browser.post("/new/", inputs.form_data(seed="7" * 3000))  # urlencoded
    assert response.status_code == 413 and "too large" in response.content.decode()
    nothing_stored()


@pytest.mark.parametrize("route", ["new-job page", "jobs API"])
def test_a_multipart_text_field_over_djangos_data_limit_is_413_not_400(browser, api, style, nothing_stored,  # noqa: F811
                                                                       settings, route):
    # The whole body is within the request limit; one text field alone is over
    # DATA_UPLOAD_MAX_MEMORY_SIZE, which Django itself refuses (as a 400 unless handled).
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    padding = " " * 5000
    if route == "new-job page":
        body, content_type = inputs.multipart({**inputs.form_data(), "style_images": str(style.pk),
                                               "preset": padding}, {"content_file": ("a.png", inputs.png())})
        response = browser.generic("POST", "/new/", body, content_type=content_type)
        text = response.content.decode()
    else:
        body, content_type = inputs.multipart({"styles": str(style.pk), "params": "{}" + padding},
                                              {"content_file": ("a.png", inputs.png())})
        response = api.generic("POST", "/api/v1/jobs/", body, content_type=content_type)
        text = response.json()["detail"]
    assert response.status_code == 413 and "too large" in text
    nothing_stored()


def test_too_many_form_fields_is_400_saying_so(browser, nothing_stored, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 50
    response = browser.post("/new/", {**inputs.form_data(), **{f"extra{i}": "1" for i in range(60)}})
    assert response.status_code == 400 and "too many fields" in response.content.decode()
    nothing_stored()


# -- params -----------------------------------------------------------------------------------

NAN, INFINITY = float("nan"), float("inf")
BAD_PARAMS = [
    ({"size": 99_999}, "size", "must be at most"),
    ({"size": 8}, "size", "must be at least 32"),
    ({"iterations": "many"}, "iterations", "must be a whole number"),
    ({"size": 256.5}, "size", "must be a whole number"),
    ({"content_weight": "heavy"}, "content_weight", "must be a number"),
    ({"normalize_content": "yes"}, "normalize_content", "must be true or false"),
    ({"pooling": "median"}, "pooling", "must be one of max, avg"),
    ({"style_layers": {"relu9_9": 1.0}}, "style_layers", "unknown layer 'relu9_9'"),
    ({"content_layers": {"conv_banana": 1.0}}, "content_layers", "unknown layer 'conv_banana'"),
    ({"style_layers": ["relu1_1"]}, "style_layers", "must map layer names to weights"),
    ({"colour": "blue"}, "colour", "unknown option"),
    ({"weights": "/etc/passwd"}, "weights", "chosen by the server"),
    ({"style_weight": NAN}, "style_weight", "must be a finite number"),
    ({"tv_weight": INFINITY}, "tv_weight", "must be a finite number"),
    ({"style_layers": {"relu1_1": NAN}}, "style_layers", "must be a finite number"),
    ({"style_blend": [INFINITY]}, "style_blend", "finite"),
    ({"content_weight": 10**400}, "content_weight", "must be at most"),
    ({"style_layers": {"relu1_1": 10**400}}, "style_layers", "must be between 0 and 1"),  # balanced: a share
    ({"style_blend": [10**400]}, "style_blend", "finite"),
    ({"layer_normalisation": "seed", "style_layers": {"relu1_1": 10**400}}, "style_layers",
     "must be between 0 and 1000"),
    ({"layer_normalisation": "deepest"}, "layer_normalisation", "must be one of balanced, seed"),
]


@pytest.fixture
def post_json(api, style):  # noqa: F811
    """post_json(body) -> POST /api/v1/jobs/ with Ada's content and style and this JSON (NaN and
    Infinity written as Python's json does)."""

    def post(body: dict):
        full = {"content": str(style.pk), "styles": [str(style.pk)], **body}
        return api.post("/api/v1/jobs/", json.dumps(full), content_type="application/json")

    return post


@pytest.mark.parametrize("params, field, reason", BAD_PARAMS)
def test_bad_params_as_json_are_400_naming_the_field(post_json, nothing_stored, params, field, reason):
    response = post_json({"params": params})
    assert response.status_code == 400, response.content
    assert list(response.json()) == ["params"]
    assert field in response.json()["params"] and reason in response.json()["params"][field][0]
    nothing_stored()


@pytest.mark.parametrize("params, field, reason", BAD_PARAMS[::3])
def test_bad_params_in_a_multipart_job_are_400_naming_the_field(api, style, nothing_stored,  # noqa: F811
                                                                params, field, reason):
    body, content_type = inputs.multipart(
        {"styles": str(style.pk), "params": json.dumps(params)}, {"content_file": ("cat.png", inputs.png())})
    response = api.generic("POST", "/api/v1/jobs/", body, content_type=content_type)
    assert response.status_code == 400
    assert reason in response.json()["params"][field][0]
    nothing_stored()


@pytest.mark.parametrize("body, field", [
    ({"priority": "high"}, "priority"),
    ({"priority": NAN}, "priority"),
    ({"priority": 10**400}, "priority"),
    ({"preset": "turbo"}, "preset"),
    ({"params": "size=512"}, "params"),
    ({"params": [1, 2]}, "params"),
    ({"styles": "not-a-list"}, "styles"),
    ({"styles": [{"id": 1}]}, "styles"),
])
def test_bad_job_fields_are_400_naming_the_field(post_json, nothing_stored, body, field):
    response = post_json(body)
    assert response.status_code == 400 and field in response.json(), response.content
    nothing_stored()


def test_a_json_body_nested_too_deeply_is_400_not_500(api, nothing_stored):  # noqa: F811
    response = api.post("/api/v1/jobs/", "[" * 100_000 + "]" * 100_000, content_type="application/json")
    assert response.status_code == 400 and "JSON" in response.json()["detail"]
    nothing_stored()


def test_params_nested_too_deeply_in_a_multipart_job_are_400_naming_params(api, style, nothing_stored):  # noqa: F811
    body, content_type = inputs.multipart({"content": str(style.pk), "styles": str(style.pk),
                                           "params": "[" * 100_000 + "]" * 100_000}, {})
    response = api.generic("POST", "/api/v1/jobs/", body, content_type=content_type)
    assert response.status_code == 400 and "params" in response.json()
    nothing_stored()


@pytest.mark.parametrize("field, value, message", [
    ("size", "3000", "Must be at most 2048 px on this server, not 3000."),
    ("size", "99999", "Must be at most 4096, not 99999."),
    ("iterations", "many", "Enter a whole number."),
    ("seed", "1e400", "Enter a whole number."),
    ("content_weight", "nan", "Enter a number."),
    ("style_weight", "Infinity", "Enter a number."),
    ("tv_weight", "-inf", "Enter a number."),
    ("layer_relu1_1", "NaN", "Enter a number."),
    ("layer_relu1_1", "5000", "Ensure this value is less than or equal to 1000.0."),
    ("content_layer", "relu9_9", "Select a valid choice. relu9_9 is not one of the available choices."),
    ("pooling", "median", "Select a valid choice. median is not one of the available choices."),
    ("layer_normalisation", "deepest", "Select a valid choice. deepest is not one of the available choices."),
])
def test_bad_params_on_the_page_are_400_with_the_message_next_to_the_field(browser, style, nothing_stored,
                                                                         field, value, message):
    data = {**inputs.form_data(**{field: value}), "content_image": str(style.pk), "style_images": str(style.pk)}
    response = browser.post("/new/", data)
    assert response.status_code == 400
    assert page_error(response, field) == message
    nothing_stored()


# -- tricky files that are fine --------------------------------------------------------------------

@pytest.fixture
def upload_via(send):
    """upload_via(route, filename, data) -> the StyleImage stored from that upload."""

    def upload(route: str, filename: str, data: bytes) -> StyleImage:
        response = send(route, filename, data)
        assert response.status_code in (201, 202, 302), response.content[:500]
        return StyleImage.objects.exclude(original_name="waves.png").get()

    return upload


@pytest.mark.parametrize("route", ROUTES)
def test_a_polyglot_is_stored_re_encoded_and_served_as_a_png_that_browsers_do_not_sniff(
        upload_via, browser, route):
    image = upload_via(route, "cat.png", inputs.polyglot())
    with default_storage.open(image.file.name, "rb") as f:
        stored = f.read()
    assert UUID_PNG.match(image.file.name) and b"<script" not in stored and b"<html" not in stored
    response = browser.get(f"/images/{image.pk}/")
    served = b"".join(response.streaming_content)
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert served == stored and served.startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.parametrize("route", ROUTES)
def test_a_photo_with_exif_orientation_6_is_stored_upright_and_without_gps(upload_via, route):
    data = inputs.jpeg_with_exif(orientation=6, gps=True)
    assert Image.open(io.BytesIO(data)).getexif().get_ifd(inputs.GPS_IFD)  # the upload does carry a location
    image = upload_via(route, "holiday.jpg", data)
    picture = stored_picture(image)
    assert (image.width, image.height) == picture.size == (40, 64)  # 64 x 40 turned a quarter clockwise
    top, bottom = picture.getpixel((20, 5)), picture.getpixel((20, 58))
    assert top[0] > 150 and top[2] < 100 and bottom[2] > 150  # the red half is now on top
    assert not picture.getexif() and "exif" not in picture.info
    assert not picture.getexif().get_ifd(inputs.GPS_IFD)


@pytest.mark.parametrize("route", ROUTES)
def test_a_client_file_name_with_a_path_is_stored_under_a_uuid_inside_media_root(
        upload_via, media_root, tmp_path, route):
    image = upload_via(route, "../../etc/x.png", inputs.png())
    assert UUID_PNG.match(image.file.name)
    assert image.original_name == "x.png"
    assert [p.name for p in tmp_path.iterdir()] == ["media"]  # nothing beside MEDIA_ROOT
    assert not any(part == "etc" for path in media_root.rglob("*") for part in path.parts)
