"""Fair share of the queue: one person with five jobs queued cannot make a second person wait
behind all five. Grace queues five jobs, then Bob one, with no worker up; a real worker then
runs them from a real redis-server in the order Redis serves them. Bob's job runs second
(Grace's first was in the queue before his), not sixth as it did when every job of the same
priority shared one lane."""

from __future__ import annotations

import pytest

from tests.processes import wait_for_job
from webapp.jobs import lifecycle
from webapp.models import StyleJob

pytestmark = pytest.mark.django_db(transaction=True)

Status = StyleJob.Status


def test_a_second_persons_job_runs_before_the_first_persons_later_ones(
        redis, worker_factory, submit, make_user, upload, settings):
    settings.JOBS_PER_USER = 5
    graces = [submit(iterations=1) for _ in range(5)]
    bob = make_user("bob")
    bobs = lifecycle.create_job(bob, upload(bob, (10, 200, 10)), [upload(bob, (200, 10, 10))],
                                {"size": 32, "scales": 1, "iterations": 1, "seed": 3})

    worker = worker_factory("fair", redis.url)
    rows = [wait_for_job(job, lambda r: r.is_finished, worker, timeout=300) for job in [*graces, bobs]]
    assert all(row.status == Status.SUCCEEDED for row in rows), worker.tail()
    order = [row.pk for row in sorted(rows, key=lambda row: row.started)]
    assert order.index(bobs.pk) == 1, [("bob" if pk == bobs.pk else "grace") for pk in order]
    assert order[0] == graces[0].pk and order[2:] == [job.pk for job in graces[1:]]  # Grace's own stay in order


def test_each_further_job_of_one_person_waits_a_lane_later(redis, submit, settings):
    from webapp.queue import broker

    settings.JOBS_PER_USER = 5
    settings.QUEUE_SHARE_PER_PERSON = 2
    for _ in range(4):
        submit(iterations=1)
    client = redis.client()
    lengths = {key: client.llen(key) for key in broker.lane_keys()}
    assert [n for n in lengths.values() if n] == [2, 1, 1]  # two share the normal lane, then one lane each
    normal = broker.lane_keys()[4]
    assert lengths[normal] == 2
