"""A person in a real browser: signs up, logs in, uploads a photo and a painting, watches the job
run on a real worker, sees the result and what the network sees, and cancels a long job."""

from __future__ import annotations

import re

import pytest

from webapp.models import StyleJob

pytestmark = pytest.mark.django_db(transaction=True)  # the worker and the live server see what is committed

WAIT = 120_000  # ms; a busy 2-core machine runs other tests at the same time

# Collects every value the progress bar takes, and marks the document: after a reload the mark is gone.
WATCH_PROGRESS = """() => {
  window.__sameDocument = true;
  window.__progress = [document.getElementById('progress').value];
  new MutationObserver(() => window.__progress.push(document.getElementById('progress').value))
    .observe(document.getElementById('progress'), {attributes: true, attributeFilter: ['value']});
}"""


def sign_up_and_log_in(page, site, username="frida"):
    password = "a long and unusual passphrase"
    page.goto(f"{site}/")
    assert "/accounts/login/" in page.url  # everything else needs a login
    page.get_by_role("link", name="Create an account").click()
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_label("Password confirmation").fill(password)
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url(re.compile(r"/new/$"))
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(re.compile(r"/accounts/login/"))
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/$"))
    assert page.get_by_role("heading", name="My jobs").is_visible()


def submit_tiny_job(page, site, photos, iterations: int):
    page.goto(f"{site}/new/")
    page.set_input_files("#id_content_file", str(photos["content"]))
    page.set_input_files("#id_style_files", str(photos["style"]))
    # Previews show before anything is uploaded.
    assert page.locator("#content-previews img").evaluate("img => img.src.startsWith('blob:')")
    page.locator("#style-previews li").first.wait_for()
    page.get_by_label("Output size (px)").fill("48")
    page.get_by_label("Scales", exact=True).fill("1")
    page.get_by_label("Iterations", exact=True).fill(str(iterations))
    page.get_by_label("Seed").fill("11")
    page.get_by_role("button", name="Stylize").click()
    page.wait_for_url(re.compile(r"/jobs/[0-9a-f-]+/$"))
    return StyleJob.objects.get(pk=page.url.rstrip("/").rsplit("/", 1)[1])


def loaded(page, selector: str) -> bool:
    return page.locator(selector).evaluate("img => img.complete && img.naturalWidth > 0")


def test_a_person_stylizes_a_photo_and_watches_it_happen(page, site, worker, photos, artifacts):
    sign_up_and_log_in(page, site)
    job = submit_tiny_job(page, site, photos, iterations=30)
    assert job.params["size"] == 48 and job.params["iterations"] == 30

    page.evaluate(WATCH_PROGRESS)
    page.locator("#status-badge", has_text="Succeeded").wait_for(timeout=WAIT)
    job.refresh_from_db()
    assert job.status == StyleJob.Status.SUCCEEDED, f"{job.error}\n{worker.tail()}"

    # The bar moved to the end without the page being loaded again.
    values = page.evaluate("window.__progress")
    assert page.evaluate("window.__sameDocument") is True
    assert values[0] < 100 and values[-1] == 100, values
    assert values == sorted(values), values

    # The result, full size, with a download link, and it really loads.
    page.locator("#result-actions").wait_for(state="visible")
    page.wait_for_function("() => { const i = document.getElementById('stage-image');"
                           " return i.src.includes('result.png') && i.complete && i.naturalWidth > 0; }",
                           timeout=WAIT)
    assert page.locator("#stage-image").evaluate("img => img.naturalWidth") == 48
    assert "download=1" in page.get_by_role("link", name="Download PNG").get_attribute("href")
    assert page.locator("#fact-seed").inner_text() == "11"

    # The loss curves, drawn from the status endpoint's history.
    assert page.locator("#loss-chart path.line").count() >= 3
    assert "total" in page.locator("#loss-legend").inner_text()

    # The visualisations the worker stored: feature maps per layer (the first one open), Grams,
    # patches, loss curves.
    shown = page.locator("#vis-list [data-name]")
    shown.first.wait_for()
    names = shown.evaluate_all("items => items.map(item => item.dataset.name)")
    assert {"features_relu1_1", "features_relu5_1", "gram", "patches", "loss"} <= set(names), names
    page.locator("[data-name=features_relu5_1] summary").click()  # a deeper layer, on demand
    for name in ("features_relu1_1", "features_relu5_1", "gram", "patches", "loss"):
        image = page.locator(f"[data-name={name}] img")
        image.scroll_into_view_if_needed()
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())

    # The nine patches of a unit the person picks, computed on demand.
    page.get_by_label("Layer", exact=True).select_option("relu2_1")
    page.get_by_label("Unit", exact=True).fill("5")
    page.get_by_role("button", name="Show patches").click()
    page.locator("#patches-figure").wait_for(state="visible", timeout=WAIT)
    assert loaded(page, "#patches-image")
    assert page.locator("#patches-caption").inner_text() == "relu2_1, unit 5"

    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(artifacts / "job_page.png"), full_page=True)
    assert page.js_errors == []

    # "Run again with changes" opens the form filled in with this job's settings and images.
    page.get_by_role("link", name="Run again with changes").click()
    assert page.get_by_label("Output size (px)").input_value() == "48"
    assert page.get_by_label("Seed").input_value() == "11"
    assert page.locator("input[name=content_image]:checked").get_attribute("value") == str(job.content_id)
    page.screenshot(path=str(artifacts / "new_job_prefilled.png"), full_page=True)

    page.get_by_role("link", name="My jobs").click()
    card = page.locator(".job-card").first
    assert "succeeded" in card.inner_text().lower()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0",
                           arg=card.locator("img").element_handle())
    page.screenshot(path=str(artifacts / "gallery.png"), full_page=True)

    # The job page on a phone: one column, nothing wider than the screen.
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{site}/jobs/{job.pk}/")
    assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    page.screenshot(path=str(artifacts / "job_page_phone.png"), full_page=False)
    assert page.js_errors == []


def test_a_person_cancels_a_long_job_from_its_page(page, site, worker, photos, artifacts):
    sign_up_and_log_in(page, site, username="ansel")
    job = submit_tiny_job(page, site, photos, iterations=3000)  # minutes, were it not cancelled
    page.locator("#status-badge", has_text="Running").wait_for(timeout=WAIT)
    page.evaluate(WATCH_PROGRESS)
    page.locator("#progress-text", has_text="iteration").wait_for(timeout=WAIT)

    # While it runs, the latest intermediate image is shown, and replaced as new ones come.
    page.wait_for_function("() => { const i = document.getElementById('stage-image');"
                           " return i.src.includes('preview.png') && i.complete && i.naturalWidth > 0; }",
                           timeout=WAIT)
    first_preview = page.locator("#stage-image").get_attribute("src")
    page.wait_for_function("first => document.getElementById('stage-image').getAttribute('src') !== first",
                           arg=first_preview, timeout=WAIT)
    page.wait_for_function("() => document.querySelectorAll('#loss-chart path.line').length >= 3")
    page.screenshot(path=str(artifacts / "job_running.png"), full_page=False)

    page.get_by_role("button", name="Cancel").click()
    page.locator("#status-badge", has_text="Cancelled").wait_for(timeout=60_000)
    assert page.evaluate("window.__sameDocument") is True
    assert page.locator("#cancel-form").is_hidden()
    assert "Cancelled at step" in page.locator("#progress-text").inner_text()
    job.refresh_from_db()
    assert job.status == StyleJob.Status.CANCELLED and job.step < 3000
    page.screenshot(path=str(artifacts / "job_cancelled.png"), full_page=True)
    assert page.js_errors == []
