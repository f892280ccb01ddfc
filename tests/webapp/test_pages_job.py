"""The job page, its JSON status, Cancel, "run again with changes" and the owner-only files (the
top patches of a unit: test_unit_patches.py). The engine is not run here: a finished job gets small stand-in
pictures (the browser tests run the real one)."""

from __future__ import annotations

import io
import re

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone
from PIL import Image

from webapp.jobs import lifecycle
from webapp.models import JobArtifact, StyleJob

pytestmark = pytest.mark.django_db

Status = StyleJob.Status
HISTORY = [{"step": s, "scale": 0, "loss": 100.0 / s, "losses": {"content:relu4_2": 1.0, "style:relu1_1": 99.0 / s}}
           for s in range(1, 5)]
ARTIFACTS = ("features_relu1_1", "features_relu4_2", "gram", "patches", "loss")


def png(width=48, height=32, colour=(200, 80, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def run_a_little(job: StyleJob, step: int = 2, preview: bool = True) -> StyleJob:
    """The job as a worker leaves it mid-run."""
    name = default_storage.save(f"results/{job.pk}/preview-a.png", ContentFile(png())) if preview else ""
    StyleJob.objects.filter(pk=job.pk).update(
        status=Status.RUNNING, started=timezone.now(), last_heartbeat=timezone.now(), attempts=1, progress=step / 4,
        step=step, total_steps=4, scale=0, num_scales=1, iteration=step, iterations=4, eta_seconds=3.0,
        elapsed_seconds=1.0, loss=HISTORY[step - 1]["loss"], loss_history=HISTORY[:step], preview=name, device="CPU")
    job.refresh_from_db()
    return job


def finish(job: StyleJob, artifacts=ARTIFACTS) -> StyleJob:
    """The job as a worker leaves it when it succeeded: result, visualisations, seed."""
    run_a_little(job)
    result = default_storage.save(f"results/{job.pk}/result.png", ContentFile(png()))
    StyleJob.objects.filter(pk=job.pk).update(
        status=Status.SUCCEEDED, finished=timezone.now(), result=result, progress=1.0, step=4, iteration=4,
        eta_seconds=0.0, loss_history=HISTORY, seed=job.params.get("seed") or 1234, engine_version="0.1.0", weights_sha256="c3" * 32)
    for i, name in enumerate(artifacts):
        stored = default_storage.save(f"results/{job.pk}/{name}.png", ContentFile(png(64, 40)))
        JobArtifact.objects.create(job=job, name=name, file=stored, position=i)
    job.refresh_from_db()
    return job


@pytest.fixture
def logged_in(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def done(queued_job):
    return finish(queued_job)


def status_of(client, job, **query):
    response = client.get(f"/jobs/{job.pk}/status.json", query)
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert "no-cache" in response["Cache-Control"]
    return response.json()


# -- the page ----------------------------------------------------------------------------------

def test_a_queued_job_shows_its_status_inputs_and_params(logged_in, queued_job, content, style):
    response = logged_in.get(f"/jobs/{queued_job.pk}/")
    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="status-badge">Queued<' in html and 'id="cancel-form"' in html
    assert "chelsea × starry_night" in html
    assert f"/images/{content.pk}/thumbnail.jpg" in html and f"/images/{style.pk}/thumbnail.jpg" in html
    assert re.search(r"Output size \(px\)</th><td>48</td>", html)
    assert "Layer weighting</th><td>Balanced (λ = each layer&#x27;s share)</td>" in html
    assert "Start from</th><td>The content in the style&#x27;s colours</td>" in html
    assert f'href="/new/?from={queued_job.pk}"' in html
    assert 'id="job-state"' in html and "/static/js/job.js" in html


def test_a_succeeded_job_shows_the_result_the_download_and_the_visualisations(logged_in, done):
    html = logged_in.get(f"/jobs/{done.pk}/").content.decode()
    assert re.search(rf'id="stage-image" src="/jobs/{done.pk}/result.png\?v=\w+"', html)
    assert re.search(rf'href="/jobs/{done.pk}/result.png\?v=\w+&amp;download=1"', html)
    for name in ARTIFACTS:
        assert f"/jobs/{done.pk}/visualizations/{name}.png?v=" in html
    # Feature maps shallow to deep, each with its part in the run.
    assert html.index('data-name="features_relu1_1"') < html.index('data-name="features_relu4_2"')
    assert "style layer, λ 0.2" in html and "content layer" in html
    assert 'id="fact-seed">7<' in html
    assert 'id="patches-form"' in html and 'id="cancel-form"' in html


def test_a_failed_job_says_why_in_plain_words(logged_in, queued_job):
    StyleJob.objects.filter(pk=queued_job.pk).update(status=Status.FAILED, error="The GPU ran out of memory; "
                                                     "try 1024 px or less.")
    html = logged_in.get(f"/jobs/{queued_job.pk}/").content.decode()
    assert re.search(r'id="error-box" role="alert"\s*>', html)
    assert "The GPU ran out of memory; try 1024 px or less." in html


# -- status.json --------------------------------------------------------------------------------

def test_status_of_a_queued_job(logged_in, queued_job):
    state = status_of(logged_in, queued_job)
    assert state["status"] == "queued" and state["finished"] is False
    assert state["progress"] == 0 and state["preview"] is None and state["result"] is None
    assert state["visualizations"] == [] and state["loss_history"] == [] and state["error"] == ""


def test_status_of_a_running_job_has_progress_eta_history_and_a_versioned_preview(logged_in, queued_job):
    job = run_a_little(queued_job, step=2)
    state = status_of(logged_in, job)
    assert (state["status"], state["progress"], state["step"], state["total_steps"]) == ("running", 0.5, 2, 4)
    assert (state["scale"], state["num_scales"], state["iteration"], state["iterations"]) == (1, 1, 2, 4)
    assert state["eta_seconds"] == 3.0 and state["device"] == "CPU"
    assert state["loss_history"] == HISTORY[:2]
    preview = state["preview"]
    assert preview["url"] == f"/jobs/{job.pk}/preview.png?v={preview['version']}"
    # A new preview is a new stored name, so a new version: the browser cannot show a stale one.
    StyleJob.objects.filter(pk=job.pk).update(
        preview=default_storage.save(f"results/{job.pk}/preview-b.png", ContentFile(png())))
    assert status_of(logged_in, job)["preview"]["version"] != preview["version"]


def test_status_sends_only_the_history_the_page_does_not_have(logged_in, queued_job):
    job = run_a_little(queued_job, step=2)
    assert status_of(logged_in, job, step=2)["loss_history"] is None  # nothing new
    newer = status_of(logged_in, job, step=1)
    assert (newer["loss_history"], newer["loss_history_after"]) == (HISTORY[1:2], 1)  # to append
    assert status_of(logged_in, job, step=-1)["loss_history"] == HISTORY[:2]
    assert "loss_history_after" not in status_of(logged_in, job, step=9)  # the run went back: all of it
    assert "loss_history_after" not in status_of(logged_in, job, step="junk")
    done = finish(job)
    assert status_of(logged_in, done, step=4)["loss_history"] == HISTORY  # always whole when finished


def test_status_of_a_succeeded_job_links_the_result_and_visualisations(logged_in, done):
    state = status_of(logged_in, done)
    assert state["finished"] is True and state["seed"] == 7 and state["progress"] == 1.0
    assert state["result"]["url"].startswith(f"/jobs/{done.pk}/result.png?v=")
    assert state["result"]["download_url"].endswith("&download=1")
    assert [v["name"] for v in state["visualizations"]] == list(ARTIFACTS)
    assert state["visualizations"][0]["layer"] == "relu1_1"
    assert state["patches_url"] == f"/jobs/{done.pk}/patches.png"


# -- cancel ---------------------------------------------------------------------------------------

def test_cancel_stops_a_queued_job_at_once(logged_in, queued_job):
    response = logged_in.post(f"/jobs/{queued_job.pk}/cancel/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    queued_job.refresh_from_db()
    assert queued_job.status == Status.CANCELLED


def test_cancel_asks_a_running_job_to_stop(logged_in, queued_job):
    job = run_a_little(queued_job)
    state = logged_in.post(f"/jobs/{job.pk}/cancel/", HTTP_ACCEPT="application/json").json()
    assert state["status"] == "running" and state["cancel_requested"] is True
    assert lifecycle.should_cancel(job.pk)


def test_cancel_without_script_redirects_back_to_the_job(logged_in, queued_job):
    response = logged_in.post(f"/jobs/{queued_job.pk}/cancel/")
    assert response.status_code == 302 and response["Location"] == f"/jobs/{queued_job.pk}/"


def test_a_finished_job_cannot_be_cancelled(logged_in, done):
    response = logged_in.post(f"/jobs/{done.pk}/cancel/", HTTP_ACCEPT="application/json")
    assert response.status_code == 409 and "already succeeded" in response.json()["message"]


def test_cancel_needs_a_post_with_the_csrf_token(client, user, queued_job):
    client.force_login(user)
    assert client.get(f"/jobs/{queued_job.pk}/cancel/").status_code == 405
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    assert strict.post(f"/jobs/{queued_job.pk}/cancel/").status_code == 403
    queued_job.refresh_from_db()
    assert queued_job.status == Status.QUEUED


# -- run again with changes ------------------------------------------------------------------------

def test_run_again_fills_the_form_with_the_jobs_params_images_and_seed(logged_in, user, content, style,
                                                                      second_style, sent,
                                                                      django_capture_on_commit_callbacks):
    job = lifecycle.create_job(user, content, [style, second_style],
                          {"size": 64, "scales": 1, "iterations": 5, "style_weight": 0.02, "style_blend": [3, 1],
                           "style_layers": {"relu2_2": 0.5, "relu4_1": 1.0}, "content_layers": {"relu3_1": 1}})
    finish(job)
    html = logged_in.get(f"/new/?from={job.pk}").content.decode()
    for name, value in (("size", "64"), ("iterations", "5"), ("style_weight", "0.02"), ("seed", "1234"),
                        ("layer_relu2_2", "0.5"), ("layer_relu4_1", "1.0"), (f"blend_{style.pk}", "3"),
                        (f"blend_{second_style.pk}", "1")):
        assert re.search(rf'name="{name}"[^>]*value="{re.escape(value)}"|value="{re.escape(value)}"[^>]*name="{name}"',
                         html), name
    assert 'name="layer_relu1_1"' not in html  # only the layers the job used
    assert re.search(rf'value="{content.pk}" checked', html)
    assert re.search(rf'name="style_images" value="{style.pk}" checked', html)
    assert re.search(r'<option value="relu3_1" selected>', html)


def test_run_again_of_a_job_with_the_seeds_formula_keeps_it_and_its_large_weights(logged_in, user, content, style,
                                                                                 sent):
    job = lifecycle.create_job(user, content, [style], {"size": 48, "layer_normalisation": "seed",
                                                        "style_layers": {"relu1_1": 1000, "relu4_1": 2}})
    html = logged_in.get(f"/new/?from={job.pk}").content.decode()
    assert '<option value="seed" selected>' in html
    number = re.search(r'<input type="number" name="layer_relu1_1"[^>]*>', html).group(0)
    assert 'value="1000.0"' in number and 'max="1000"' in number  # the seed's bound, not balanced's 1


def test_run_again_from_someone_elses_or_a_malformed_job_is_not_found(logged_in, make_user, upload):
    other = make_user()
    theirs = lifecycle.create_job(other, upload(other), [upload(other, "style", "the_scream.jpg")], {"size": 48})
    assert logged_in.get(f"/new/?from={theirs.pk}").status_code == 404
    assert logged_in.get("/new/?from=not-a-job").status_code == 404


# -- files -------------------------------------------------------------------------------------------

def test_the_result_is_served_as_a_png_with_nosniff_and_can_be_downloaded(logged_in, done):
    response = logged_in.get(f"/jobs/{done.pk}/result.png")
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert b"".join(response.streaming_content) == default_storage.open(done.result.name).read()
    download = logged_in.get(f"/jobs/{done.pk}/result.png", {"download": "1", "v": "x"})
    assert download["Content-Disposition"].startswith("attachment;") and "stylized-" in download["Content-Disposition"]
    assert "max-age" in download["Cache-Control"] and "private" in download["Cache-Control"]


def test_previews_visualisations_inputs_and_thumbnails_are_served_to_the_owner(logged_in, done, content):
    for url, kind in ((f"/jobs/{done.pk}/preview.png", "image/png"),
                      (f"/jobs/{done.pk}/visualizations/gram.png", "image/png"),
                      (f"/jobs/{done.pk}/thumbnail.jpg", "image/jpeg"),
                      (f"/images/{content.pk}/", "image/png"),
                      (f"/images/{content.pk}/thumbnail.jpg", "image/jpeg")):
        response = logged_in.get(url)
        assert response.status_code == 200, url
        assert response["Content-Type"] == kind and response["X-Content-Type-Options"] == "nosniff", url
    # A thumbnail is made once, then read back.
    assert default_storage.exists(f"thumbnails/{content.pk}-240.jpg")


def test_missing_files_are_not_found(logged_in, queued_job):
    assert logged_in.get(f"/jobs/{queued_job.pk}/result.png").status_code == 404  # not done yet
    assert logged_in.get(f"/jobs/{queued_job.pk}/preview.png").status_code == 404  # none yet
    assert logged_in.get(f"/jobs/{queued_job.pk}/visualizations/gram.png").status_code == 404


def test_another_persons_job_and_files_do_not_exist_for_you(client, make_user, done, content):
    client.force_login(make_user("mallory"))
    for url in (f"/jobs/{done.pk}/", f"/jobs/{done.pk}/status.json", f"/jobs/{done.pk}/result.png",
                f"/jobs/{done.pk}/preview.png", f"/jobs/{done.pk}/thumbnail.jpg",
                f"/jobs/{done.pk}/visualizations/gram.png", f"/jobs/{done.pk}/patches.png?layer=relu1_1&unit=0",
                f"/images/{content.pk}/", f"/images/{content.pk}/thumbnail.jpg"):
        assert client.get(url).status_code == 404, url
    assert client.post(f"/jobs/{done.pk}/cancel/").status_code == 404


def test_anonymous_visitors_are_sent_to_log_in(client, done, content):
    for url in (f"/jobs/{done.pk}/", f"/jobs/{done.pk}/status.json", f"/jobs/{done.pk}/result.png",
                f"/images/{content.pk}/", "/", "/new/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/?next="), url
    assert client.post(f"/jobs/{done.pk}/cancel/")["Location"].startswith("/accounts/login/")
