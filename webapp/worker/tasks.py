"""The Celery task: claim the job its message names (and, with WORKER_BATCH_SIZE > 1, queued
jobs that can run with it: batching.py), run them (run.py), report the worker idle.

The only module that knows Celery's task API. It is registered under queue/lanes.TASK_NAME
(messages already queued carry that name), and senders publish by that name
(webapp/jobs/dispatch.py), so nothing that sends jobs imports this module.
"""

from __future__ import annotations

import logging
import os

from celery import Task
from celery.exceptions import TimeLimitExceeded
from django.conf import settings
from django.db import connections

from ..celery import app
from ..jobs import lifecycle
from ..queue.lanes import TASK_NAME
from . import batching, heartbeat
from .run import execute, execute_batch

log = logging.getLogger(__name__)


class StyleJobTask(Task):
    def on_failure(self, exc, task_id, args, kwargs, einfo):
        # On a hard time limit Celery kills the child and calls this in the parent process:
        # the job would otherwise stay "running" with no message left to run it.
        if isinstance(exc, TimeLimitExceeded) and args:
            try:
                lifecycle.fail_lost_task(args[0], task_id, f"Took longer than the limit of "
                                                           f"{settings.JOB_HARD_TIME_LIMIT} s and was stopped.")
            except Exception:
                log.exception("job %s: could not record that it hit the hard time limit", args[0])
            finally:
                connections.close_all()  # the parent forks new children: they must not share it


@app.task(bind=True, base=StyleJobTask, name=TASK_NAME)
def run_style_job(self, job_id: str) -> str:
    """Run one job; returns how it ended (logged only: there is no result backend)."""
    worker, task_id = self.request.hostname or "worker", self.request.id
    job = lifecycle.claim(job_id, worker, task_id=task_id)
    # Jobs this message claimed for a batch (batching.py) on a worker that was lost: taken over too.
    jobs = [job] if job is not None else []
    jobs += batching.partners_left_by_a_lost_worker(task_id, job_id, worker)
    if not jobs:
        delay = lifecycle.takeover_delay(job_id, task_id, worker)
        if delay is None:
            return "not claimed"
        # Running elsewhere under this message, heartbeat still fresh: its worker may have just
        # died (the message came back) or may be alive (a duplicate). Ask again once the heartbeat
        # would be stale; a live job's will have moved on, a dead one's is then taken over here.
        log.info("job %s: running elsewhere with a fresh heartbeat; this message asks again in %.0f s", job_id, delay)
        raise self.retry(countdown=delay, max_retries=None)
    if job is not None and len(jobs) == 1:
        jobs += batching.claim_partners(job, worker, task_id)
    try:
        if len(jobs) == 1:
            return execute(jobs[0])
        statuses = execute_batch(jobs)
        return statuses[job.pk] if job is not None else "took over the jobs of its batch"
    finally:
        _report_idle(worker)


def _report_idle(worker: str) -> None:
    try:
        heartbeat.record(worker, pid=os.getppid(), job_id=None)  # this is a pool process
    except Exception:
        log.warning("could not record the worker's heartbeat", exc_info=True)
