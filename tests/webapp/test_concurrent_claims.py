"""Claims and the per-person cap hold when workers and requests race (real threads, real connections)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from webapp.jobs import lifecycle
from webapp.models import StyleJob

pytestmark = pytest.mark.django_db(transaction=True)

RACERS = 8


def race(function, *args_per_racer):
    """Run function(*args) for each args on its own thread, all released at once."""
    barrier = threading.Barrier(len(args_per_racer))

    def one(args):
        barrier.wait()
        try:
            return function(*args)
        except Exception as exc:  # returned, so the test sees every outcome
            return exc
        finally:
            connection.close()  # each thread has its own connection

    with ThreadPoolExecutor(len(args_per_racer)) as pool:
        return list(pool.map(one, args_per_racer))


def test_of_many_workers_claiming_one_job_at_once_exactly_one_gets_it(queued_job):
    outcomes = race(lifecycle.claim, *[(queued_job.id, f"gpu{i}@host") for i in range(RACERS)])
    winners = [o for o in outcomes if isinstance(o, StyleJob)]
    assert len(winners) == 1, outcomes
    assert outcomes.count(None) == RACERS - 1
    job = StyleJob.objects.get(pk=queued_job.pk)
    assert (job.status, job.attempts, job.worker_host) == ("running", 1, winners[0].worker_host)


def test_when_one_message_is_delivered_twice_at_once_only_one_attempt_keeps_the_job(queued_job):
    # A message may legitimately come back (its worker died), so both deliveries may claim;
    # the later claim fences the earlier one: only one attempt can still write.
    outcomes = race(lifecycle.claim, *[(queued_job.id, f"gpu{i}@host", queued_job.task_id) for i in range(2)])
    claims = [o for o in outcomes if isinstance(o, StyleJob)]
    assert claims, outcomes
    still_holding = [job for job in claims if lifecycle.report_progress(job, {"progress": 0.1})]
    assert len(still_holding) == 1


def test_simultaneous_submissions_cannot_exceed_the_cap(user, content, style, tiny_params, sent, settings):
    settings.JOBS_PER_USER = 3
    outcomes = race(lifecycle.create_job, *[(user, content, [style], tiny_params)] * RACERS)
    created = [o for o in outcomes if isinstance(o, StyleJob)]
    refused = [o for o in outcomes if isinstance(o, lifecycle.JobLimitReached)]
    assert (len(created), len(refused)) == (3, RACERS - 3), outcomes
    assert StyleJob.objects.filter(owner=user).count() == 3
