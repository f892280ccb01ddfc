"""The per-person cap holds under parallel requests: the count and the insert are one step."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from webapp.models import StyleJob

pytestmark = pytest.mark.django_db(transaction=True)  # each thread has its own connection and commits


def test_twenty_parallel_job_posts_against_a_cap_of_five_leave_exactly_five_queued(
        user, content, style, tiny_params, settings, sent, token_client):
    settings.JOBS_PER_USER = 5
    body = {"content": str(content.pk), "styles": [str(style.pk)], "params": tiny_params}

    def post(_):
        try:
            return token_client(user).post("/api/v1/jobs/", body, format="json").status_code
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=20) as pool:
        codes = list(pool.map(post, range(20)))
    assert sorted(codes) == [202] * 5 + [429] * 15
    assert StyleJob.objects.filter(owner=user, status=StyleJob.Status.QUEUED).count() == 5
    assert len(sent) == 5
