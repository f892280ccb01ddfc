"""Which queued jobs join a claimed job's batch (WORKER_BATCH_SIZE > 1), and claiming them.

A GPU runs one 512 px job far below its capacity; stylize.run_batch optimises several jobs of the
same sizes and schedule in one pass through VGG19 (stylize/batch.py). When a worker's message
gives it a job, it looks at the front of the queue for up to WORKER_BATCH_SIZE - 1 more jobs that
stylize.batch.batch_key() says may run with it, and claims each (lifecycle.claim_partner): the
rows then name this message, so the partners' own messages find nothing to run when they
arrive, and if this worker is lost, this message, delivered again, takes them all over
(partners_left_by_a_lost_worker).

Which jobs: queued, without a checkpoint (a job that would resume runs alone), in the order a
worker would take them (priority, then age), among the first BATCH_CANDIDATES of that order, so
a batch never reaches far behind the front. Jobs further back wait as before. The batch's total
cost (jobs/cost.py) stays within one job's budget: the time limits are the message's, set for
one job of that budget, and a batch of small jobs must fit them as one large job would.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db.models import F

import stylize
from stylize.batch import batch_key

from ..jobs import cost, lifecycle
from ..models import StyleJob

log = logging.getLogger(__name__)

BATCH_CANDIDATES = 200  # how far from the front of the queue partners may come from


def job_key(job: StyleJob) -> tuple | None:
    """The job's batch_key from its stored params and content size; None if its params no longer
    validate (it runs alone and fails with the reason)."""
    try:
        return batch_key(job.config(), (job.content.width, job.content.height))
    except stylize.ConfigError:
        return None


def claim_partners(lead: StyleJob, worker_host: str, task_id: str, room: int | None = None) -> list[StyleJob]:
    """Claim up to `room` (WORKER_BATCH_SIZE - 1) queued jobs that may run in one batch with
    `lead`, under the message `task_id`; [] when batching is off or nothing fits."""
    room = settings.WORKER_BATCH_SIZE - 1 if room is None else room
    key = job_key(lead) if room > 0 and not lead.checkpoint.name else None
    if key is None:
        return []
    spent, budget = _cost(lead), cost.budget()
    partners: list[StyleJob] = []
    candidates = (StyleJob.objects.filter(status=StyleJob.Status.QUEUED, checkpoint="",
                                          attempts__lt=F("max_attempts"))
                  .exclude(pk=lead.pk).select_related("content").order_by("-priority", "created")
                  [:BATCH_CANDIDATES])
    for candidate in candidates:
        if len(partners) >= room:
            break
        if job_key(candidate) != key:
            continue
        price = _cost(candidate)
        if spent + price > budget:
            continue
        partner = lifecycle.claim_partner(candidate.pk, worker_host, task_id)
        if partner is not None:  # another worker may have claimed it since the query
            partners.append(partner)
            spent += price
    if partners:
        log.info("job %s: runs in a batch with %s", lead.pk, ", ".join(str(p.pk) for p in partners))
    return partners


def partners_left_by_a_lost_worker(task_id: str, lead_id, worker_host: str) -> list[StyleJob]:
    """The jobs this message claimed for a batch on a worker that was lost, taken over as claim()
    takes over its own job (each resumes from its checkpoint, alone); [] when there are none or
    their worker still reports."""
    jobs = (lifecycle.claim(pk, worker_host, task_id=task_id) for pk in lifecycle.batch_members(task_id, lead_id))
    return [job for job in jobs if job is not None]


def _cost(job: StyleJob) -> float:
    return cost.estimate(job.config(), job.styles.count())
