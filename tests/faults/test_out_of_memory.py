"""Fault 8: the engine runs out of device memory (simulated on the CPU by the engine's test hook
STYLIZE_SIMULATE_OOM_PIXELS: any scale above that many pixels raises torch's OutOfMemoryError).
The job fails with a message naming a size that fits, is not retried, and the worker serves the
next job, which at that size succeeds."""

from __future__ import annotations

import re
import time

import pytest

from tests.processes import broker_holds, finished, wait_for_job
from webapp.models import StyleJob

pytestmark = pytest.mark.django_db(transaction=True)

Status = StyleJob.Status


def test_out_of_memory_fails_the_job_with_a_size_that_fits_without_retry_and_the_worker_goes_on(
        redis, worker_factory, submit):
    worker = worker_factory("small-memory", redis.url, STYLIZE_SIMULATE_OOM_PIXELS="1500")  # 64 px: ~2700
    job = submit(iterations=20, size=64)
    row = wait_for_job(job, finished, worker)
    assert row.status == Status.FAILED, worker.tail()
    fits = re.search(r"Out of host memory at \d+x\d+ px\. A result of about (\d+) px on the long side should fit",
                     row.error)
    assert fits, row.error
    assert int(fits[1]) < 64

    time.sleep(2)  # a retry would have been claimed by now
    row.refresh_from_db()
    assert (row.status, row.attempts) == (Status.FAILED, 1), worker.tail()
    assert broker_holds() is None
    after = submit(iterations=2, size=int(fits[1]))
    assert wait_for_job(after, finished, worker).status == Status.SUCCEEDED, worker.tail()
