"""Sending a job's message to the broker: only its id, by task name, once its row is committed.

By name (queue/lanes.TASK_NAME), not through the task object, so that nothing here imports
the worker's code. The time limits are left out of the message on purpose: the worker that
runs a job enforces its own JOB_*_TIME_LIMIT (Celery would otherwise write the sender's
limits into every message, and a message's limits win over the worker's).
"""

from __future__ import annotations

import logging
import uuid

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ..celery import app
from ..models import StyleJob
from ..queue.lanes import QUEUE, TASK_NAME, lane

log = logging.getLogger(__name__)

# The error of a new job whose message the broker refused at the commit (its submitter got a 503).
NOT_SENT_ERROR = ("Not started: the job queue was unavailable when this job was submitted, so it was never "
                  "sent to a worker. Please submit it again.")


def new_task_id() -> str:
    return str(uuid.uuid4())


def send(job_id: str, task_id: str, priority: int, countdown: float | None = None, behind: int = 0) -> None:
    """Publish the message that runs the job (raises whatever the broker client raises)."""
    app.send_task(TASK_NAME, args=[job_id], task_id=task_id, queue=QUEUE, priority=lane(priority, behind),
                  countdown=countdown, time_limit=None, soft_time_limit=None)


def lanes_behind(job: StyleJob) -> int:
    """How many lanes later than its priority's the job waits: one for each of its owner's other
    jobs queued or running past QUEUE_SHARE_PER_PERSON (fair share across people, queue/lanes.py).
    Only jobs of the same priority or higher count: a job staff raised goes ahead of its
    owner's others, as it would have without the fair share."""
    others = (StyleJob.objects.filter(owner_id=job.owner_id, status__in=StyleJob.ACTIVE, priority__gte=job.priority)
              .exclude(pk=job.pk).count())
    return max(0, others + 1 - settings.QUEUE_SHARE_PER_PERSON)


def send_on_commit(job: StyleJob, countdown: float | None = None, *, fail_unsent: bool = False) -> None:
    """Send the job's message once the row is committed (a worker must find what it is told about).
    If the send fails, a new job (`fail_unsent`: its submitter is told 503) is failed as not
    sent; any other stays queued for the reconciler to send again."""
    job_id, task_id, priority, behind = str(job.id), job.task_id, job.priority, lanes_behind(job)

    def on_commit() -> None:
        try:
            send(job_id, task_id, priority, countdown, behind)
        except Exception as exc:
            # Conditional on the message named: if the send did reach the broker after all (only
            # its reply was lost) and a worker has claimed the job, the job runs and is not failed.
            if fail_unsent and StyleJob.objects.filter(
                    pk=job_id, status=StyleJob.Status.QUEUED, task_id=task_id).update(
                    status=StyleJob.Status.FAILED, finished=timezone.now(), error=NOT_SENT_ERROR):
                log.error("job %s failed: could not send it to the broker (%s)", job_id, exc)
            else:
                log.exception("could not send job %s to the broker; it stays queued for the reconciler", job_id)

    transaction.on_commit(on_commit)
