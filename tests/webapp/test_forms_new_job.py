"""The new-stylization form: defaults, bounds and help from StyleConfig; params validated by
StyleConfig with each error shown next to its input; nothing entered or uploaded is lost."""

from __future__ import annotations

import html
import json
import re
from html.parser import HTMLParser

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from stylize.config import LAYER_ROLES, MAX_LAYER_WEIGHTS, PRESETS, StyleConfig, field_info
from tests.inputs import form_data
from webapp.models import StyleImage, StyleJob

pytestmark = pytest.mark.django_db


# -- helpers ------------------------------------------------------------------------------

class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text_of: dict[str, str] = {}
        self._open: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if attrs.get("id"):
            self._open.append(attrs["id"])
            self.text_of[attrs["id"]] = ""
        elif tag not in ("input", "img", "br", "option", "span", "strong", "code", "a"):
            self._open.append("")

    def handle_endtag(self, tag):
        if tag not in ("input", "img", "br", "option", "span", "strong", "code", "a") and self._open:
            self._open.pop()

    def handle_data(self, data):
        for element_id in self._open:
            if element_id:
                self.text_of[element_id] += data


def parse(response) -> _Tags:
    parser = _Tags()
    parser.feed(response.content.decode())
    return parser


def find(page: _Tags, tag: str, **attrs) -> dict | None:
    for name, found in page.tags:
        if name == tag and all(found.get(k.rstrip("_")) == v for k, v in attrs.items()):
            return found
    return None


def error_of(response, field: str) -> str:
    """The message shown next to the input `field` ("" if none)."""
    return parse(response).text_of.get(f"id_{field}_error", "").strip()


def addable_layers(response) -> list[str]:
    html = response.content.decode()
    select = html[html.index('<select id="add-layer-select">'):]
    return re.findall(r'<option value="(\w+)">', select[:select.index("</select>")])


@pytest.fixture
def photo(sample_photo):
    def make(kind="content", name="chelsea.png", client_name=None, **kwargs):
        return SimpleUploadedFile(client_name or name, sample_photo(kind, name, **kwargs))
    return make


@pytest.fixture
def logged_in(client, user, sent):
    client.force_login(user)
    return client


def post(client, data, **files):
    return client.post("/new/", {**data, **files})


# -- the empty form ---------------------------------------------------------------------------

def test_the_form_starts_with_style_configs_defaults_bounds_and_help(logged_in):
    response = logged_in.get("/new/")
    assert response.status_code == 200
    page = parse(response)
    size = find(page, "input", name="size")
    assert size["value"] == "512" and size["min"] == "32" and size["max"] == "2048"  # the server's limit
    assert find(page, "input", name="style_weight")["value"] == str(StyleConfig().style_weight)
    assert find(page, "input", name="scales")["max"] == str(field_info("scales").metadata["max"])
    assert page.text_of["id_tv_weight_helptext"].strip() == field_info("tv_weight").metadata["help"]
    for layer, weight in StyleConfig().style_layers.items():
        assert find(page, "input", name=f"layer_{layer}")["value"] == str(weight)
        assert find(page, "input", type="range", **{"data-sync": f"id_layer_{layer}"}) is not None
    assert addable_layers(response) == ["relu1_2", "relu2_2", "relu3_2", "relu3_3", "relu3_4", "relu4_2",
                                        "relu4_3", "relu4_4", "relu5_2", "relu5_3", "relu5_4"]
    assert "checked" in find(page, "input", type="radio", name="preset", value="balanced")
    # "Start from a given image" is refused by this server, so it is not offered.
    assert find(page, "option", value="image") is None
    for label in ("Output size (px)", "α · content weight", "β · style weight", "Preserve colours", "Seed"):
        assert label in response.content.decode()


def test_every_option_of_the_form_has_a_name_for_people_not_its_code_name(logged_in):
    from webapp.jobs.present import LABELS
    from webapp.pages.params import PARAM_FIELDS
    assert set(PARAM_FIELDS) <= set(LABELS), set(PARAM_FIELDS) - set(LABELS)
    page = logged_in.get("/new/").content.decode()
    assert ">Style views<" in page and ">style_views<" not in page


def layer_row(response, layer: str) -> str:
    """The HTML of one λ row of the page."""
    text = response.content.decode()
    start = text.index(f'<div class="layer-row" data-layer="{layer}">')
    return text[start:text.index('<div class="layer-', start + 1)]


def test_each_style_layer_shows_its_share_and_what_it_carries(logged_in):
    response = logged_in.get("/new/")
    page = parse(response)
    assert "selected" in find(page, "option", value=StyleConfig().layer_normalisation)
    assert StyleConfig().layer_normalisation == "balanced"
    text = html.unescape(response.content.decode())
    assert "Balanced (λ = each layer's share)" in text and "Seed formula (deep layers dominate)" in text
    assert "λ is each layer's share of the style's influence" in text  # the fieldset's help
    for layer, weight in StyleConfig().style_layers.items():
        number = find(page, "input", name=f"layer_{layer}")
        assert number["max"] == f"{MAX_LAYER_WEIGHTS['balanced']:g}" == "1"
        assert find(page, "input", type="range", **{"data-sync": f"id_layer_{layer}"})["max"] == "1"
        assert page.text_of[f"id_layer_{layer}_share"].strip() == "20 %"  # 0.2 of 1.0
        assert LAYER_ROLES[layer] in layer_row(response, layer)
    data = json.loads(page.text_of["new-job-data"])
    assert data["layers"]["max_weights"] == MAX_LAYER_WEIGHTS
    assert data["layers"]["roles"] == LAYER_ROLES  # for the rows the script adds


def test_the_shares_follow_the_weights_entered_and_a_layer_without_a_role_shows_none(logged_in, content, style):
    data = form_data(layer_relu3_2="0.6", layer_relu5_1="0", size="1")  # size: the page comes back
    response = post(logged_in, {**data, "content_image": str(content.pk), "style_images": [str(style.pk)]})
    page = parse(response)
    shares = {layer: page.text_of[f"id_layer_{layer}_share"].strip()
              for layer in ("relu1_1", "relu2_1", "relu3_1", "relu3_2", "relu4_1", "relu5_1")}
    # Σλ = 4 × 0.2 + 0.6 = 1.4: 0.2 / 1.4 = 14 %, 0.6 / 1.4 = 43 %.
    assert shares == {"relu1_1": "14 %", "relu2_1": "14 %", "relu3_1": "14 %", "relu3_2": "43 %",
                      "relu4_1": "14 %", "relu5_1": "0 %"}
    assert "relu3_2" not in LAYER_ROLES and "layer-role" not in layer_row(response, "relu3_2")


@pytest.mark.parametrize("weight, normalisation", [("0.5", "balanced"), ("5", "seed")])
def test_a_layer_weight_within_the_bound_of_the_weighting_chosen_is_accepted(logged_in, content, style,
                                                                            weight, normalisation):
    data = form_data(layer_relu1_1=weight, layer_normalisation=normalisation)
    response = post(logged_in, {**data, "content_image": str(content.pk), "style_images": [str(style.pk)]})
    assert response.status_code == 302
    params = StyleJob.objects.get().params
    assert params["style_layers"]["relu1_1"] == float(weight) and params["layer_normalisation"] == normalisation


def test_a_layer_weight_over_the_bound_of_balanced_weighting_is_refused_at_the_style_layers(logged_in, content,
                                                                                            style):
    data = form_data(layer_relu1_1="5")
    response = post(logged_in, {**data, "content_image": str(content.pk), "style_images": [str(style.pk)]})
    assert response.status_code == 400 and not StyleJob.objects.exists()
    assert error_of(response, "style_layers") == "Weight of relu1_1 must be between 0 and 1."
    page = parse(response)
    assert find(page, "input", name="layer_relu1_1")["value"] == "5"  # kept, to be fixed
    assert "Weight of relu1_1 must be between 0 and 1." in page.text_of["error-summary"]


def test_with_the_seeds_formula_the_inputs_take_its_larger_weights_and_no_share_is_shown(logged_in, content,
                                                                                         style):
    data = form_data(layer_relu1_1="500", layer_normalisation="seed", size="1")
    response = post(logged_in, {**data, "content_image": str(content.pk), "style_images": [str(style.pk)]})
    page = parse(response)
    assert "selected" in find(page, "option", value="seed")
    assert find(page, "input", name="layer_relu1_1")["max"] == f"{MAX_LAYER_WEIGHTS['seed']:g}" == "1000"
    assert "hidden" in find(page, "output", id="id_layer_relu1_1_share")  # λ / Σλ is not the share there
    assert not error_of(response, "style_layers")


def test_the_presets_are_embedded_for_the_pages_script(logged_in):
    data = json.loads(parse(logged_in.get("/new/")).text_of["new-job-data"])
    assert set(data["presets"]) == set(PRESETS)
    assert data["presets"]["fast"] == StyleConfig.preset("fast").to_dict()
    assert set(data["preset_fields"]) == {key for preset in PRESETS.values() for key in preset}


def test_each_preset_says_its_size_scales_and_the_style_view_it_has(logged_in):
    page = logged_in.get("/new/").content.decode()
    assert "512 px · 3 scales<" in page and "256 px · 2 scales<" in page
    assert "1024 px · 4 scales · style also seen at 512 px<" in page


# -- submitting -----------------------------------------------------------------------------------

def test_a_valid_submission_stores_the_images_and_opens_the_new_jobs_page(logged_in, user, photo, sent):
    response = post(logged_in, form_data(), content_file=photo(), style_files=[photo("style", "starry_night.jpg")])
    job = StyleJob.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/jobs/{job.pk}/"
    assert job.owner == user and job.content.original_name == "chelsea.png"
    assert [s.original_name for s in job.ordered_styles()] == ["starry_night.jpg"]
    assert job.params == StyleConfig(size=48, scales=1, iterations=4, seed=7).to_dict()


def test_every_option_entered_reaches_the_job(logged_in, content, style):
    data = form_data(content_weight="2.5", style_weight="0.003", tv_weight="0.1", style_scale="0.75",
                     content_layer="relu3_2", preserve_colors="luminance", init="random", optimizer="adam",
                     learning_rate="0.05", pooling="avg", precision="fp32", seed="", coarse_iterations="9",
                     layer_relu2_2="0.4", layer_relu5_1="0")
    del data["normalize_content"]  # an unticked box is not posted
    response = post(logged_in, {**data, "content_image": str(content.pk), "style_images": [str(style.pk)]})
    assert response.status_code == 302
    params = StyleJob.objects.get().params
    assert params["content_weight"] == 2.5 and params["style_weight"] == 0.003 and params["tv_weight"] == 0.1
    assert params["content_layers"] == {"relu3_2": 1.0}
    assert params["style_layers"] == {"relu1_1": 0.2, "relu2_1": 0.2, "relu2_2": 0.4, "relu3_1": 0.2,
                                      "relu4_1": 0.2, "relu5_1": 0.0}
    assert (params["preserve_colors"], params["init"], params["optimizer"]) == ("luminance", "random", "adam")
    assert (params["learning_rate"], params["pooling"], params["precision"]) == (0.05, "avg", "fp32")
    assert params["seed"] is None and params["normalize_content"] is False
    assert params["style_scale"] == 0.75 and params["coarse_iterations"] == 9


def test_a_removed_style_layer_is_not_used(logged_in, content, style):
    data = form_data()
    del data["layer_relu5_1"]
    post(logged_in, {**data, "content_image": str(content.pk), "style_images": [str(style.pk)]})
    assert "relu5_1" not in StyleJob.objects.get().params["style_layers"]


@pytest.mark.parametrize("field, value, message", [
    ("size", "10", "Must be at least 32, not 10."),
    ("size", "3000", "Must be at most 2048 px on this server, not 3000."),
    ("scales", "9", "Must be at most 6, not 9."),
    ("content_weight", "-1", "Must be at least 0.0, not -1.0."),
    ("style_scale", "9", "Must be at most 4.0, not 9.0."),
    ("seed", "-5", "Must be at least 0, not -5."),
    ("iterations", "many", "Enter a whole number."),
    ("learning_rate", "0", "Must be at least 1e-05, not 0.0."),
    ("preserve_colors", "sepia", "Select a valid choice. sepia is not one of the available choices."),
])
def test_a_bad_value_is_shown_next_to_its_input_and_nothing_entered_is_lost(logged_in, content, style, field,
                                                                            value, message):
    data = form_data(**{field: value, "style_weight": "0.005", "layer_relu3_1": "0.7"})
    response = post(logged_in, {**data, "content_image": str(content.pk), "style_images": [str(style.pk)]})
    assert response.status_code == 400 and not StyleJob.objects.exists()
    assert error_of(response, field) == message
    page = parse(response)
    control = find(page, "select" if field == "preserve_colors" else "input", name=field)
    assert control["aria-invalid"] == "true" and f"id_{field}_error" in control["aria-describedby"]
    if field != "preserve_colors":
        assert control["value"] == value
    assert find(page, "input", name="style_weight")["value"] == "0.005"
    assert find(page, "input", name="layer_relu3_1")["value"] == "0.7"
    assert "checked" in find(page, "input", name="content_image", value=str(content.pk))
    assert "checked" in find(page, "input", name="style_images", value=str(style.pk))
    assert message in page.text_of["error-summary"]  # and listed at the top, linking to the input


def test_a_layer_weight_out_of_range_is_shown_on_its_row(logged_in, content, style):
    data = form_data(layer_relu2_1="-0.5")
    response = post(logged_in, {**data, "content_image": str(content.pk), "style_images": [str(style.pk)]})
    assert error_of(response, "layer_relu2_1") == "Ensure this value is greater than or equal to 0.0."
    assert not StyleJob.objects.exists()


def test_a_style_layer_added_by_the_person_stays_on_the_page_after_an_error(logged_in, content, style):
    data = form_data(layer_relu4_4="0.3", size="1")
    response = post(logged_in, {**data, "content_image": str(content.pk), "style_images": [str(style.pk)]})
    page = parse(response)
    assert find(page, "input", name="layer_relu4_4")["value"] == "0.3"
    assert "relu4_4" not in addable_layers(response)  # no longer offered as an addition


def test_a_file_that_is_not_an_image_is_shown_next_to_the_file_input(logged_in, style):
    text = SimpleUploadedFile("notes.png", b"these are not the pixels you are looking for")
    response = post(logged_in, {**form_data(), "style_images": [str(style.pk)]}, content_file=text)
    message = error_of(response, "content_file")
    assert "notes.png" in message and not StyleJob.objects.exists()
    assert StyleImage.objects.count() == 1  # only the style chosen before


def test_an_upload_over_the_limit_is_refused_next_to_its_input(logged_in, content, photo, settings):
    settings.UPLOAD_MAX_BYTES = 500
    response = post(logged_in, {**form_data(), "content_image": str(content.pk)},
                    style_files=[photo("style", "starry_night.jpg")])
    assert "larger than the limit" in error_of(response, "style_files")


def test_accepted_uploads_are_kept_as_chosen_images_when_the_page_comes_back(logged_in, photo):
    response = post(logged_in, form_data(size="1", blend_new_0="3", blend_new_1="1"),
                    content_file=photo(),
                    style_files=[photo("style", "starry_night.jpg"), photo("style", "the_scream.jpg")])
    assert response.status_code == 400 and error_of(response, "size")
    content = StyleImage.objects.get(original_name="chelsea.png")
    starry = StyleImage.objects.get(original_name="starry_night.jpg")
    scream = StyleImage.objects.get(original_name="the_scream.jpg")
    page = parse(response)
    assert "checked" in find(page, "input", name="content_image", value=str(content.pk))
    for image, weight in ((starry, "3"), (scream, "1")):
        assert "checked" in find(page, "input", name="style_images", value=str(image.pk))
        assert find(page, "input", name=f"blend_{image.pk}")["value"] == weight

    # Fixed and sent again, nothing is uploaded a second time.
    again = post(logged_in, form_data(**{"content_image": str(content.pk), "style_images": [str(starry.pk), str(scream.pk)],
                                         f"blend_{starry.pk}": "3", f"blend_{scream.pk}": "1"}))
    assert again.status_code == 302 and StyleImage.objects.count() == 3
    job = StyleJob.objects.get()
    assert job.ordered_styles() == [starry, scream] and job.params["style_blend"] == [3.0, 1.0]


def test_the_same_file_uploaded_again_is_stored_once(logged_in, photo, style):
    for _ in range(2):
        post(logged_in, {**form_data(), "style_images": [str(style.pk)]}, content_file=photo())
    assert StyleImage.objects.filter(original_name="chelsea.png").count() == 1
    assert StyleJob.objects.count() == 2


def test_equal_blend_weights_are_stored_as_equal(logged_in, content, style, second_style):
    post(logged_in, form_data(**{"content_image": str(content.pk), "style_images": [str(style.pk), str(second_style.pk)],
                                 f"blend_{style.pk}": "2", f"blend_{second_style.pk}": "2"}))
    assert StyleJob.objects.get().params["style_blend"] == []


def test_a_bad_blend_weight_is_shown_with_the_styles(logged_in, content, style, second_style):
    for weights, message in ((("-1", "1"), "Weights must be finite and not negative."),
                             (("0", "0"), "At least one weight must be above 0."),
                             (("lots", "1"), "Each style's weight must be a number.")):
        response = post(logged_in, form_data(**{
            "content_image": str(content.pk), "style_images": [str(style.pk), str(second_style.pk)],
            f"blend_{style.pk}": weights[0], f"blend_{second_style.pk}": weights[1]}))
        assert error_of(response, "style_blend") == message
    assert not StyleJob.objects.exists()


def test_images_are_asked_for_next_to_the_file_inputs(logged_in):
    response = post(logged_in, form_data())
    assert error_of(response, "content_file").startswith("Choose a content image")
    assert error_of(response, "style_files").startswith("Choose at least one style image")


def test_another_persons_image_cannot_be_chosen(logged_in, content, make_user, upload):
    theirs = upload(make_user(), "style", "the_scream.jpg")
    response = post(logged_in, form_data(content_image=str(content.pk), style_images=[str(theirs.pk)]))
    assert "Select a valid choice" in error_of(response, "style_images")
    assert not StyleJob.objects.exists()
    assert find(parse(response), "input", value=str(theirs.pk)) is None  # nor is it offered


def test_too_many_styles_are_refused_next_to_the_style_input(logged_in, content, style, second_style, settings):
    settings.JOB_MAX_STYLES = 1
    response = post(logged_in, form_data(content_image=str(content.pk),
                                         style_images=[str(style.pk), str(second_style.pk)]))
    assert error_of(response, "style_files") == "Choose at most 1 style images."


def test_the_job_limit_is_explained_and_what_was_entered_stays(logged_in, content, style, settings):
    settings.JOBS_PER_USER = 1
    data = form_data(content_image=str(content.pk), style_images=[str(style.pk)], style_weight="0.02")
    assert post(logged_in, data).status_code == 302
    response = post(logged_in, data)
    assert response.status_code == 200 and StyleJob.objects.count() == 1
    page = parse(response)
    assert "already have 1 jobs queued or running" in page.text_of["limit-message"]
    assert find(page, "input", name="style_weight")["value"] == "0.02"
    # And the form says so before anything is sent.
    assert "the most allowed at once" in parse(logged_in.get("/new/")).text_of["limit-message"]
