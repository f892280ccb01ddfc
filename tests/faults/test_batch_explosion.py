"""Batches are counted before they are built: a grid of many options, or lists of thousands of
image ids, are refused with a 400 that says how many jobs that would be, without building the
plan (memory stays flat) and without a query per id."""

from __future__ import annotations

import tracemalloc
import uuid

import pytest

from tests.api.conftest import client_for, fresh_throttle  # noqa: F401 (fresh_throttle: an autouse fixture)
from webapp.models import Batch, StyleJob

pytestmark = pytest.mark.django_db

# 18 options × 2 values = 262 144 combinations: the old code built every one as a dict (hundreds of MB).
GRID_OPTIONS = ["size", "iterations", "coarse_iterations", "scales", "content_weight", "style_weight", "tv_weight",
                "style_scale", "preserve_colors", "init", "seed", "optimizer", "learning_rate", "pooling",
                "normalize_content", "precision", "content_layers", "style_layers"]


@pytest.fixture
def api(user):
    return client_for(user)


@pytest.fixture
def two_images(user, upload):
    return str(upload(user, (1, 2, 3)).pk), str(upload(user, (3, 2, 1)).pk)


def test_a_grid_of_many_options_is_400_with_its_count_and_memory_stays_flat(api, two_images, sent):
    content, style = two_images
    grid = {"content": content, "styles": [style], "values": {name: [1, 2] for name in GRID_OPTIONS}}
    tracemalloc.start()
    try:
        response = api.post("/api/v1/batches/", {"grid": grid}, format="json")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 400, response.content
    assert f"the batch has {2 ** len(GRID_OPTIONS)} jobs" in response.json()["non_field_errors"][0]
    assert peak < 20 * 2**20, f"{peak / 2**20:.0f} MiB allocated to refuse it"
    assert StyleJob.objects.count() == Batch.objects.count() == 0 and sent == []


def test_a_grid_of_forty_options_is_refused_by_its_number_of_options(api, two_images):
    content, style = two_images
    values = {f"option_{i}": [0, 1] for i in range(40)}  # 2^40 combinations
    response = api.post("/api/v1/batches/", {"grid": {"content": content, "styles": [style], "values": values}},
                        format="json")
    assert response.status_code == 400 and "at most" in str(response.json()["grid"]["values"])


@pytest.mark.parametrize("field", ["contents", "styles"])
def test_thousands_of_ids_are_refused_before_a_query_for_each(api, two_images, field,
                                                             django_assert_max_num_queries):
    content, style = two_images
    many = [str(uuid.uuid4()) for _ in range(5000)]
    body = {"contents": [content], "styles": [style], field: many}
    with django_assert_max_num_queries(15):
        response = api.post("/api/v1/batches/", body, format="json")
    assert response.status_code == 400
    assert "at most 100 items, not 5000" in str(response.json()[field])


def test_thousands_of_pairs_are_refused_before_a_query_for_each(api, two_images, django_assert_max_num_queries):
    content, style = two_images
    pairs = [{"content": content, "styles": [style]}] * 5000
    with django_assert_max_num_queries(15):
        response = api.post("/api/v1/batches/", {"pairs": pairs}, format="json")
    assert response.status_code == 400 and "not 5000" in str(response.json()["pairs"])


def test_contents_times_styles_past_the_cap_is_400_before_any_job(api, user, upload, settings, sent):
    settings.API_BATCH_MAX_JOBS = 4
    ids = [str(upload(user, (i, 9, 9)).pk) for i in range(3)]
    response = api.post("/api/v1/batches/", {"contents": ids, "styles": ids}, format="json")
    assert response.status_code == 400 and "the batch has 9 jobs; at most 4" in str(response.json())
    assert StyleJob.objects.count() == 0 and sent == []


def test_a_job_with_more_style_ids_than_allowed_is_400_before_a_query_for_each(
        api, two_images, django_assert_max_num_queries):
    content, _ = two_images
    with django_assert_max_num_queries(15):
        response = api.post("/api/v1/jobs/", {"content": content, "styles": [str(uuid.uuid4())] * 3000},
                            format="json")
    assert response.status_code == 400 and "styles" in response.json()
