"""The Celery task: claim the job its message names, run it (run.py), report the worker idle.

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
from . import heartbeat
from .run import execute

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
    worker = self.request.hostname or "worker"
    job = lifecycle.claim(job_id, worker, task_id=self.request.id)
    if job is None:
        delay = lifecycle.takeover_delay(job_id, self.request.id, worker)
        if delay is None:
            return "not claimed"
        # Running elsewhere under this message, heartbeat still fresh: its worker may have just
        # died (the message came back) or may be alive (a duplicate). Ask again once the heartbeat
        # would be stale; a live job's will have moved on, a dead one's is then taken over here.
        log.info("job %s: running elsewhere with a fresh heartbeat; this message asks again in %.0f s", job_id, delay)
        raise self.retry(countdown=delay, max_retries=None)
    try:
        return execute(job)
    finally:
        _report_idle(worker)


def _report_idle(worker: str) -> None:
    try:
        heartbeat.record(worker, pid=os.getppid(), job_id=None)  # this is a pool process
    except Exception:
        log.warning("could not record the worker's heartbeat", exc_info=True)
