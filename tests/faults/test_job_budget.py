"""One person cannot own the GPU: a job estimated to cost more than JOB_COST_BUDGET times the
`quality` preset is refused with a 400 that names the budget (the API, the page and batches),
the quality preset itself always fits, and only staff choose a priority."""

from __future__ import annotations

import pytest
from django.test import Client

import stylize
from tests.api.conftest import client_for, fresh_throttle  # noqa: F401 (fresh_throttle: an autouse fixture)
from webapp.jobs import cost
from webapp.models import StyleJob

pytestmark = pytest.mark.django_db

# The largest job the form and the API allowed before: 5000 iterations on each of 6 scales.
HUGE = {"size": 2048, "scales": 6, "iterations": 5000, "coarse_iterations": 5000, "style_scale": 4.0}


@pytest.fixture
def images(user, upload):
    return str(upload(user, (1, 2, 3)).pk), [str(upload(user, (3, 2, i)).pk) for i in range(5)]


def test_the_quality_preset_fits_and_four_times_it_is_the_limit(settings):
    quality = stylize.StyleConfig.preset("quality")
    assert cost.estimate(quality, 1) == cost.reference_cost() <= cost.budget()
    assert cost.budget() == settings.JOB_COST_BUDGET * cost.reference_cost() == 4 * cost.reference_cost()
    cost.check(quality, 1)
    five_times = quality.replace(iterations=quality.iterations * 5, coarse_iterations=quality.coarse_iterations * 5)
    with pytest.raises(stylize.ConfigError, match="JOB_COST_BUDGET"):
        cost.check(five_times, 1)


def test_each_smaller_view_of_the_style_cost_adds_a_quarter_of_the_last():
    one = stylize.StyleConfig(size=512)
    assert cost.estimate(one.replace(style_views=2), 1) == pytest.approx(1.25 * cost.estimate(one, 1))
    assert cost.estimate(one.replace(style_views=3), 2) == pytest.approx(1.3125 * cost.estimate(one, 2))


def test_the_budget_follows_the_presets_as_they_are_retuned(monkeypatch):
    before = cost.reference_cost()
    monkeypatch.setitem(stylize.PRESETS, "quality", {**stylize.PRESETS["quality"],
                                                     "iterations": stylize.PRESETS["quality"]["iterations"] * 2})
    assert cost.reference_cost() > before


def test_a_job_past_the_budget_is_400_naming_the_budget_and_nothing_is_created(user, images, sent):
    content, styles = images
    response = client_for(user).post("/api/v1/jobs/", {"content": content, "styles": styles, "params": HUGE},
                                     format="json")
    assert response.status_code == 400, response.content
    message = response.json()["params"][0]
    assert "JOB_COST_BUDGET" in message and "budget of this server is 4 times" in message
    assert StyleJob.objects.count() == 0 and sent == []


def test_the_quality_preset_is_accepted(user, images, sent):
    content, styles = images
    response = client_for(user).post("/api/v1/jobs/", {"content": content, "styles": styles[:1],
                                                       "preset": "quality"}, format="json")
    assert response.status_code == 202, response.content


def test_a_batch_with_a_job_past_the_budget_is_400_and_creates_nothing(user, images, sent):
    content, styles = images
    response = client_for(user).post("/api/v1/batches/", {"contents": [content], "styles": styles[:2],
                                                          "params": HUGE}, format="json")
    assert response.status_code == 400 and "JOB_COST_BUDGET" in str(response.json())
    assert StyleJob.objects.count() == 0 and sent == []


def test_the_page_refuses_a_job_past_the_budget_with_the_message(user, images, sent):
    from webapp.pages.params import PARAM_FIELDS, default_params

    content, styles = images
    browser = Client()
    browser.force_login(user)
    params = {**default_params(), **HUGE}
    data = {name: params[name] for name in PARAM_FIELDS if name in params and params[name] is not None}
    data.update({"content_image": content, "style_images": styles, "content_layer": "relu4_2",
                 **{f"layer_{n}": w for n, w in default_params()["style_layers"].items()}})
    response = browser.post("/new/", data)
    assert response.status_code == 400
    assert "JOB_COST_BUDGET" in response.content.decode() and StyleJob.objects.count() == 0


@pytest.mark.parametrize("priority", [9, 1, -1])
def test_a_priority_from_someone_not_staff_is_refused(user, images, sent, priority):
    content, styles = images
    api = client_for(user)
    job = api.post("/api/v1/jobs/", {"content": content, "styles": styles[:1], "priority": priority}, format="json")
    batch = api.post("/api/v1/batches/", {"contents": [content], "styles": styles[:1], "priority": priority},
                     format="json")
    assert job.status_code == batch.status_code == 400
    assert "only staff" in job.json()["priority"][0] and "only staff" in batch.json()["priority"][0]
    assert StyleJob.objects.count() == 0


def test_staff_may_set_a_priority(user, images, sent):
    user.is_staff = True
    user.save()
    content, styles = images
    response = client_for(user).post("/api/v1/jobs/", {"content": content, "styles": styles[:1], "priority": 5},
                                     format="json")
    assert response.status_code == 202 and StyleJob.objects.get().priority == 5
