"""The reconciler: the database says which jobs should be waiting or running; this makes the broker
agree, so no accepted job is left with nobody to run it.

One pass (`reconcile()`):
  1. a job queued in the database for RECONCILE_GRACE_SECONDS whose message is in neither the
     broker's waiting lists nor its unacknowledged hash (a send that failed, Redis restarted
     without its data) is given a new message id and sent again (lifecycle.resend: the old id can no
     longer claim it, should a copy of the old message turn up after all);
  2. a running job whose worker has been silent for STUCK_AFTER_SECONDS (the machine died, or its
     message was dropped elsewhere while it still looked alive) is queued again, resuming from
     its checkpoint, with its attempts kept so a job that kills workers still meets its cap.
If the broker cannot be read, the pass changes nothing (BrokerUnavailable).

It runs as `python manage.py reconcile_jobs --every 60` (docker compose's `reconciler` service,
a process of `make run`); any number of them may run at once: every change is one conditional
UPDATE, so two passes never both act on a job.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from ..models import StyleJob
from ..queue import broker
from . import lifecycle

log = logging.getLogger(__name__)


@dataclass
class Report:
    resent: list[str] = field(default_factory=list)  # queued jobs whose lost message was sent again
    requeued: list[str] = field(default_factory=list)  # stuck running jobs queued again

    def __str__(self) -> str:
        return f"{len(self.resent)} queued job(s) sent again, {len(self.requeued)} stuck job(s) requeued"


class CannotInspect(broker.BrokerUnavailable):
    """The broker is one whose contents cannot be read (memory://): nothing can be reconciled."""


def reconcile(grace_seconds: float | None = None) -> Report:
    """One pass; raises broker.BrokerUnavailable (having changed nothing) if the broker cannot be read."""
    grace = settings.RECONCILE_GRACE_SECONDS if grace_seconds is None else grace_seconds
    cutoff = timezone.now() - timedelta(seconds=grace)
    # The database first, then the broker: a message sent in between is then seen as present.
    # (The other way round, a job queued and sent in between would look lost; the grace covers
    # new jobs, and resending one that was not lost only makes its first message stale.)
    queued = list(StyleJob.objects.filter(status=StyleJob.Status.QUEUED, created__lt=cutoff)
                  .filter(Q(last_heartbeat__isnull=True) | Q(last_heartbeat__lt=cutoff))
                  .values_list("pk", "task_id"))
    stuck = list(lifecycle.stuck_jobs())
    state = broker.read(with_task_ids=True)
    if state is None:
        raise CannotInspect("the broker's contents cannot be read (an in-memory broker); nothing was reconciled")
    report = Report()
    for job_id, task_id in queued:
        if task_id not in state.task_ids and lifecycle.resend(job_id, task_id):
            report.resent.append(str(job_id))
    for job in stuck:
        worker = job.worker_host or "?"
        try:
            lifecycle.requeue(job, reset_attempts=False)
        except lifecycle.JobStateError:  # it reported, finished or was cancelled meanwhile
            continue
        log.warning("job %s: its worker %s had been silent for over %d s; queued again (%d of %d attempts used)",
                    job.pk, worker, settings.STUCK_AFTER_SECONDS, job.attempts, job.max_attempts)
        report.requeued.append(str(job.pk))
    return report
