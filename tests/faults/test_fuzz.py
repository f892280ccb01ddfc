"""Fuzzing what strangers send: random and mangled bytes to the upload validator, random JSON as
job params. Whatever comes in, the answer is an image or an ImageError, a StyleConfig or a
ConfigError naming an option, and over HTTP never a 5xx.

Bounded and derandomized (the same examples every run, no example database), so CI is
deterministic and the file runs in well under a minute on two cores."""

from __future__ import annotations

import io
import json

import pytest
from django.core.cache import caches
from django.core.files.uploadedfile import SimpleUploadedFile
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st
from PIL import Image

from tests import inputs
import stylize
from stylize.config import PRESETS, StyleConfig, field_info
from stylize.vgg import LAYER_NAMES
from tests.api.conftest import client_for
from tests.conftest import SHARED_IMAGES
from webapp.jobs import lifecycle, storage
from webapp.models import StyleImage

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media_root"),
              pytest.mark.filterwarnings("ignore::UserWarning")]  # Pillow reading mangled metadata


def fuzz(max_examples: int):
    # The function-scoped fixtures (database, person, settings, media folder) are shared by all
    # examples of a test on purpose: each example only adds rows and files, never relies on their
    # absence.
    return hypothesis_settings(max_examples=max_examples, deadline=None, derandomize=True, database=None,
                               suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture
def api(user, settings, sent):
    """Ada's token client; `sent` keeps jobs from the broker."""
    settings.JOBS_PER_USER = 10**6  # every valid example is a job
    return client_for(user)


# -- bytes ---------------------------------------------------------------------------------------

def _encoded(img: Image.Image, format: str, **options) -> bytes:
    out = io.BytesIO()
    img.save(out, format=format, **options)
    return out.getvalue()


def _seed_images() -> list[bytes]:
    """Small valid files of every kind the validator reads: a real photo as PNG and as JPEG (with
    EXIF), and noise as RGBA PNG, palette PNG, 16-bit grey PNG, progressive JPEG, WebP."""
    photo = Image.open(SHARED_IMAGES / "content" / "chelsea.png").convert("RGB")
    photo.thumbnail((32, 32))
    noise = Image.frombytes("RGB", (24, 16), inputs.noise_bytes(24 * 16 * 3, 3))
    exif = Image.Exif()
    exif[inputs.ORIENTATION] = 6
    return [
        _encoded(photo, "PNG"),
        _encoded(photo, "JPEG", quality=80, exif=exif.tobytes()),
        _encoded(noise.convert("RGBA"), "PNG"),
        _encoded(noise.convert("P"), "PNG"),
        _encoded(noise.convert("L").convert("I;16"), "PNG"),
        _encoded(noise, "JPEG", progressive=True),
        _encoded(noise, "WEBP", quality=60),
    ]


SEED_IMAGES = _seed_images()
MAGIC = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"\xff\xd8\xff\xe1", b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"GIF89a",
         b"BM", b"<svg", b"%PDF-", b"II*\x00"]


@st.composite
def mutated_images(draw) -> bytes:
    """A valid image with a few bytes flipped, set, inserted or deleted (half of them in the
    header, where the parsers decide the most), and perhaps cut short."""
    data = bytearray(draw(st.sampled_from(SEED_IMAGES)))
    for _ in range(draw(st.integers(0, 6))):
        position = draw(st.integers(0, min(63, len(data) - 1)) | st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "set", "insert", "delete"]))
        if action == "flip":
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif action == "set":
            data[position] = draw(st.sampled_from([0x00, 0xFF, 0x7F, 0x80]) | st.integers(0, 255))
        elif action == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=8))
        elif len(data) > 1:
            del data[position]
    if draw(st.booleans()):
        data = data[:draw(st.integers(0, len(data)))]
    return bytes(data)


random_bytes = st.binary(max_size=2048) | st.builds(lambda magic, rest: magic + rest, st.sampled_from(MAGIC),
                                                    st.binary(max_size=1024))
any_upload = random_bytes | mutated_images()


def store_or_refuse(owner, data: bytes) -> StyleImage | None:
    """store_upload's answer: an image, or None for an ImageError (with a message). Anything else fails the test."""
    try:
        image = storage.store_upload(owner, SimpleUploadedFile("fuzz.png", data))
    except stylize.ImageError as error:
        assert str(error)
        return None
    assert isinstance(image, StyleImage) and image.width > 0 and image.height > 0
    return image


@fuzz(max_examples=200)
@given(data=random_bytes)
def test_random_bytes_are_stored_or_refused_with_an_image_error(user, data):
    store_or_refuse(user, data)


@fuzz(max_examples=200)
@given(data=mutated_images())
def test_mangled_images_are_stored_or_refused_with_an_image_error(user, data):
    image = store_or_refuse(user, data)
    if image is not None:  # what is stored decodes again, as the worker will decode it
        assert storage.open_image(image.file.name).size == (image.width, image.height)


@fuzz(max_examples=100)
@given(data=any_upload)
def test_the_upload_endpoint_never_answers_5xx(api, data):
    caches["throttle"].clear()  # a hundred uploads are not what the request rate limit is about
    response = api.post("/api/v1/images/", {"file": SimpleUploadedFile("fuzz.png", data)},
                                     format="multipart")
    assert response.status_code in (200, 201, 400, 413, 415), response.content[:300]
    if response.status_code == 400:
        assert "file" in response.json()  # an empty file
    elif response.status_code >= 400:
        assert response.json()["detail"]


# -- job params ----------------------------------------------------------------------------------

OPTION_NAMES = [name for name in StyleConfig.__dataclass_fields__]
BOUNDS = sorted({value for name in OPTION_NAMES for key in ("min", "max")
                 if (value := field_info(name).metadata.get(key)) is not None})
CHOICES = sorted({choice for name in OPTION_NAMES for choice in field_info(name).metadata.get("choices") or ()})

# Numbers where code breaks: past a float (1e400 as an int), NaN, ±Infinity, and each bound's edges.
edge_numbers = st.sampled_from([10**400, -(10**400), 2**63, 2**64, 1e308, float("nan"), float("inf"),
                                float("-inf"), -1, 0])
numbers = st.one_of(edge_numbers, st.integers(), st.floats(),
                    st.sampled_from(BOUNDS).flatmap(lambda b: st.sampled_from([b, b - 1, b + 1, b * 1.0001, -b])))
scalars = st.none() | st.booleans() | numbers | st.text(max_size=12) | st.sampled_from([*LAYER_NAMES, *CHOICES])
layer_maps = st.dictionaries(st.sampled_from(LAYER_NAMES) | st.text(max_size=8), numbers | scalars, max_size=4)
json_values = st.recursive(scalars | layer_maps, lambda children: st.lists(children, max_size=4)
                           | st.dictionaries(st.text(max_size=8), children, max_size=4), max_leaves=12)
# Each option gets, as often as anything else, a number, a map of layers or a list of numbers (the
# shapes its checks expect, with bad contents), then any JSON at all.
option_values = st.one_of(numbers, layer_maps, st.lists(numbers, max_size=3), scalars, json_values)
random_params = (st.dictionaries(st.sampled_from(OPTION_NAMES), option_values, min_size=1, max_size=4)
                 | st.dictionaries(st.sampled_from(OPTION_NAMES) | st.text(max_size=12), option_values, max_size=6))
presets = st.none() | st.sampled_from(sorted(PRESETS)) | st.text(max_size=8)


@fuzz(max_examples=300)
@given(params=random_params, preset=st.none() | st.sampled_from(sorted(PRESETS)), num_styles=st.integers(1, 3))
def test_random_params_give_a_config_or_a_config_error_naming_an_option(params, preset, num_styles):
    try:
        config = lifecycle.validate_params(params, num_styles, preset)
    except stylize.ConfigError as error:  # "params": the job as a whole (over the cost budget)
        assert error.field in set(params) | set(OPTION_NAMES) | {"params"} and error.reason
    else:
        assert StyleConfig.from_dict(config.to_dict()) == config  # what is stored reads back the same


@fuzz(max_examples=300)
@given(params=random_params, preset=presets, as_multipart=st.booleans())
def test_random_params_through_the_api_never_answer_5xx_and_a_refusal_names_the_field(
        api, content, style, params, preset, as_multipart):
    caches["throttle"].clear()
    body = {"content": str(content.pk), "styles": [str(style.pk)], "params": params, "preset": preset}
    if as_multipart:  # params as a JSON string, as a form carries it
        fields = {**body, "params": json.dumps(params), "preset": preset or ""}
        response = api.post("/api/v1/jobs/", {k: v for k, v in fields.items() if v}, format="multipart")
    else:  # NaN and Infinity written as Python's json writes them
        response = api.post("/api/v1/jobs/", json.dumps(body), content_type="application/json")
    assert response.status_code in (202, 400), response.content[:300]
    if response.status_code == 400:
        errors = response.json()
        assert set(errors) <= {"params", "preset"}, errors
        named = errors.get("params", {})
        if isinstance(named, dict):
            assert set(named) <= set(params) | set(OPTION_NAMES), errors
