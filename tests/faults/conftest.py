"""Fault tests: real faults injected into real processes (a private redis-server, real `celery worker`
subprocesses, the real engine on 32-48 px images), each asserting what the service promises:
every accepted job is kept, none runs twice at the same time, bad input is refused cleanly.

What is where:
    tests/processes.py          redis_factory, redis (one this process publishes to), worker_factory,
                                send_to: the real processes; wait_for_job(), finished(),
                                broker_holds(): a job's row polled (log tails on failure), what
                                the broker holds
    conftest.py (this file)     submit() (Grace and her two tiny images come from tests/conftest.py)
    test_worker_killed.py       1. SIGKILL of the pool process mid-job: resumes from its checkpoint
    test_batch_worker_killed.py 1. the same mid-batch (WORKER_BATCH_SIZE): every job taken over, resumed
    test_poison_job.py          2. a job that kills its worker every time: failed at the attempt cap
    test_visibility_timeout.py  3. a job longer than Redis' visibility timeout runs once
    test_time_limit.py          4. soft and hard time limits: failed as timed out, not re-delivered
    test_warm_shutdown.py       5. SIGTERM during a job; SIGKILL after the grace: never lost
    test_redis_restart.py       6. Redis SIGKILLed and restarted from its AOF with 20 jobs queued
    test_redis_down.py          7. submitting while Redis is down: 503, nothing half-made
    test_reconcile.py           7. the reconciler: lost messages sent again, stuck jobs requeued
    test_out_of_memory.py       8. out of device memory: failed with a size that fits, not retried
    test_cancel.py              9. cancel a queued job and a running one
    test_bad_input.py, test_access.py, test_fuzz.py, inputs.py: bad input and access (their own fixtures)

Every wait is bounded and a failure message carries the workers' log tails.
"""

from __future__ import annotations

from typing import Callable

import pytest

from webapp.models import StyleJob

Status = StyleJob.Status


@pytest.fixture
def submit(person, images) -> Callable[..., StyleJob]:
    """submit(iterations, size=32, **params) -> a queued job of Grace's, sent to the broker."""
    from webapp.jobs import lifecycle

    def make(iterations: int, size: int = 32, **params) -> StyleJob:
        content, style = images
        return lifecycle.create_job(person, content, [style], {"size": size, "scales": 1, "iterations": iterations,
                                                          "seed": 3, **params})

    return make
