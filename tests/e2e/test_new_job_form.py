"""The new-stylization form in a real browser: a dropped photo is previewed before anything is
uploaded, presets fill the fields, layers are added, and an error from the server keeps the
uploads (as chosen images) and everything typed. No worker is needed: nothing runs."""

from __future__ import annotations

import base64
import re

import pytest

from webapp.models import StyleImage, StyleJob

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "a long and unusual passphrase"

DROP = """([name, data]) => {
  const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], name, {type: 'image/png'}));
  return transfer;
}"""


@pytest.fixture
def form_page(page, live_server, settings, django_user_model):
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = settings.SECURE_SSL_REDIRECT = False
    django_user_model.objects.create_user("berthe", password=PASSWORD)
    page.goto(f"{live_server.url}/accounts/login/?next=/new/")
    page.get_by_label("Username").fill("berthe")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/new/$"))
    return page


def drop(page, selector, path):
    transfer = page.evaluate_handle(DROP, [path.name, base64.b64encode(path.read_bytes()).decode()])
    page.dispatch_event(selector, "drop", {"dataTransfer": transfer})


def test_the_form_previews_fills_and_keeps_everything(form_page, photos, artifacts):
    page = form_page
    # A dropped photo is shown at once, before any upload.
    drop(page, "#content-drop", photos["content"])
    preview = page.locator("#content-previews img")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=preview.element_handle())
    assert preview.get_attribute("src").startswith("blob:")
    assert page.locator("#id_content_file").evaluate("input => input.files.length") == 1
    # Two styles, each with its weight.
    page.set_input_files("#id_style_files", [str(photos["style"]), str(photos["style2"])])
    assert page.locator("#style-previews li").count() == 2
    page.locator("input[name=blend_new_0]").fill("0")
    page.locator("input[name=blend_new_1]").fill("0")

    # A preset fills size, scales and iterations; changing one makes the settings "custom".
    page.get_by_role("radio", name=re.compile(r"^Fast")).check()
    assert page.get_by_label("Output size (px)").input_value() == "256"
    assert page.get_by_label("Scales", exact=True).input_value() == "2"
    assert page.locator("#preset-custom").is_hidden()
    page.get_by_label("Output size (px)").fill("64")
    assert page.locator("#preset-custom").is_visible()
    assert page.locator("input[name=preset]:checked").count() == 0

    # Another style layer, its slider and number in step.
    page.get_by_label("Add a layer").select_option("relu3_2")
    page.get_by_role("button", name="Add", exact=True).click()
    page.get_by_label("λ relu3_2, slider").fill("0.6")
    assert page.locator("#id_layer_relu3_2").input_value() == "0.6"
    # Each layer's share of the style follows: Σλ = 5 × 0.2 + 0.6 = 1.6.
    assert page.locator("#id_layer_relu3_2_share").inner_text() == "38 %"
    assert page.locator("#id_layer_relu1_1_share").inner_text() == "13 %"
    assert page.locator("[data-layer=relu1_1] .layer-role").inner_text() == "colour and fine grain"
    assert page.locator("[data-layer=relu3_2] .layer-role").inner_text() == ""  # no role to tell
    page.locator("#id_layer_relu3_2").fill("0.2")
    assert page.locator("#id_layer_relu3_2_share").inner_text() == "17 %"  # 0.2 / 1.2
    # The seed's formula takes weights up to 1000, and λ / Σλ is no longer each layer's share there.
    page.get_by_label("Layer weighting").select_option("seed")
    assert page.locator("#id_layer_relu1_1").get_attribute("max") == "1000"
    assert page.locator("#id_layer_relu3_2").get_attribute("max") == "1000"
    assert page.locator("#id_layer_relu1_1_share").is_hidden()
    page.get_by_label("Layer weighting").select_option("balanced")
    assert page.locator("#id_layer_relu3_2").get_attribute("max") == "1"
    assert page.locator("#id_layer_relu1_1_share").is_visible()
    page.get_by_label("λ relu3_2, slider").fill("0.6")
    page.get_by_label("Scales", exact=True).fill("1")
    page.get_by_label("Iterations", exact=True).fill("3")
    page.screenshot(path=str(artifacts / "new_job_filled.png"), full_page=True)

    # Only the server knows that all-zero blend weights leave nothing to blend.
    page.get_by_role("button", name="Stylize").click()
    page.wait_for_load_state()
    summary = page.locator("#error-summary")
    assert "weight must be above 0" in summary.inner_text()
    assert page.evaluate("document.activeElement.id") == "error-summary"  # read out first
    assert "weight must be above 0" in page.locator("#id_style_blend_error").inner_text()
    # Nothing is lost: the uploads are now chosen images, and the values typed are still there.
    assert StyleImage.objects.count() == 3 and not StyleJob.objects.exists()
    assert page.locator("input[name=content_image]:checked").count() == 1
    assert page.locator("input[name=style_images]:checked").count() == 2
    assert page.get_by_label("Output size (px)").input_value() == "64"
    assert page.locator("#id_layer_relu3_2").input_value() == "0.6"
    page.screenshot(path=str(artifacts / "new_job_error.png"), full_page=True)

    # Fixed, it goes through without uploading anything again.
    page.locator("[data-library=style] input[name^=blend_]").first.fill("2")
    page.get_by_role("button", name="Stylize").click()
    page.wait_for_url(re.compile(r"/jobs/[0-9a-f-]+/$"))
    job = StyleJob.objects.get()
    assert StyleImage.objects.count() == 3
    assert job.params["size"] == 64 and job.params["style_layers"]["relu3_2"] == 0.6
    assert sorted(job.params["style_blend"]) == [0.0, 2.0]
    assert page.js_errors == []


def test_the_form_fits_a_phone(form_page, artifacts):
    page = form_page
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    too_wide = page.evaluate("[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right"
                             " > document.documentElement.clientWidth).map(e => e.tagName + '.' + e.className)")
    assert overflow <= 0, too_wide
    page.screenshot(path=str(artifacts / "new_job_phone.png"), full_page=True)
    assert page.js_errors == []
