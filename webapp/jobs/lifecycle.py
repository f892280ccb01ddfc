"""The job lifecycle; the only module that changes a StyleJob's status.

    create_job ──> queued ──claim──> running ──finish──> succeeded
                     │  ^               │ ├──fail──────> failed ──┐
                     │  │               │ └──(Cancelled)> cancelled ─┤
                     └──┼──cancel───────┴─────────────────> cancelled │
                        └──────────────requeue────────────────────────┘

Every transition is one conditional UPDATE (`... WHERE status = <expected>`), so
two workers, or a worker and a person pressing Cancel, can never both win. A
worker owns a running job for one *attempt* (the value of `attempts` its claim
set): every write it makes is conditional on that attempt, so a worker that was
presumed dead and replaced finds its writes refused (JobSuperseded) and stops.

Re-delivery: the Celery task is acks_late + reject_on_worker_lost, so a message
whose worker process died is delivered again. The row names the one message
(task_id) that may run it; that same message arriving for a job still marked
running, at the node that ran it or after the job's worker has been silent for
STUCK_AFTER_SECONDS, means its previous worker is gone, so claim() takes the job
over (one more attempt) and the task resumes from the stored checkpoint. Arriving
elsewhere while the job's heartbeat is still fresh, it does not run: takeover_delay() says how
long until the heartbeat would be stale, and the task asks again then (a worker on another
machine takes a job over within STUCK_AFTER_SECONDS of its worker's death, and a duplicate of
a live job's message never starts a second run). Heartbeats are written every
JOB_HEARTBEAT_SECONDS by a thread of the running job's process (beat()), stamped and compared
with the database's clock, never a worker's.
`max_attempts` caps the takeovers, so a job that kills its worker every time ends
as failed, not in a loop.

Sending: a new job is accepted only while the broker answers (QueueUnavailable
otherwise, before anything is written); its message goes out when the row is
committed (dispatch.py). If that send fails all the same, the job is failed at once ("not
sent"; the request answers 503) rather than left queued with no message. Any
other queued job whose message is missing (a send that failed on a requeue, a
broker restarted without its data) is sent again by reconcile.py.
"""

from __future__ import annotations

import copy
import logging
import uuid
from datetime import timedelta
from typing import Mapping, Sequence

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.db.models.functions import Now
from django.utils import timezone

import stylize
from stylize.config import field_info

from ..models import Batch, JobArtifact, JobAttempt, JobStyle, StyleImage, StyleJob
from ..numbers import finite_float
from ..queue import broker
from ..queue.lanes import MAX_PRIORITY, MIN_PRIORITY
from . import cost, live, storage
from .dispatch import NOT_SENT_ERROR, new_task_id, send_on_commit

log = logging.getLogger(__name__)

Status = StyleJob.Status
Outcome = JobAttempt.Outcome
# Options the server decides: which device a worker uses, and which weights file it reads
# (a path there would let a person make the worker open any file on it).
SERVER_CHOSEN_OPTIONS = ("device", "weights")
# Choices StyleConfig knows that this server does not offer: starting from a given image
# would need a third upload per job, and the pages have no place for it.
NOT_OFFERED = {("init", "image")}
PROGRESS_FIELDS = frozenset({
    "progress", "scale", "num_scales", "iteration", "iterations", "step", "total_steps", "loss",
    "eta_seconds", "elapsed_seconds", "loss_history", "preview", "checkpoint", "device"})
_ERROR_MAX_CHARS = 2000
_TRACEBACK_MAX_CHARS = 20000


class JobError(Exception):
    """A request about a job that cannot be done; the message is meant for the person who made it.
    `field` names the input at fault, when there is one, so a form can show it there."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class JobLimitReached(JobError):
    """The owner already has JOBS_PER_USER jobs queued or running."""


class JobInputError(JobError):
    """The images or batch given for a new job cannot be used (not the owner's, too many, none)."""


class JobStateError(JobError):
    """The job is in a state that does not allow this (cancel a finished job, requeue a running one)."""


class QueueUnavailable(Exception):
    """The broker cannot take a new job's message now (down, unreachable, or full): nothing was
    started. Not a JobError: it is the service's fault, not the request's (503, not 4xx)."""

    def __init__(self, message: str = "The job queue is unavailable right now; nothing was started. "
                                      "Please try again in a minute."):
        super().__init__(message)


class JobSuperseded(Exception):
    """A worker's claim on a job is no longer valid (finished, cancelled or taken over elsewhere)."""


# -- create --------------------------------------------------------------------------------

def validate_params(params: Mapping, num_styles: int, preset: str | None = None) -> stylize.StyleConfig:
    """The StyleConfig for untrusted params, within this server's limits; raises stylize.ConfigError."""
    if not isinstance(params, Mapping):
        raise stylize.ConfigError("params", "must be an object of option names to values")
    for name in SERVER_CHOSEN_OPTIONS:
        if name in params:
            raise stylize.ConfigError(name, "is chosen by the server and cannot be set")
    config = stylize.StyleConfig.from_dict(params, preset=preset)
    if config.size > settings.OUTPUT_MAX_SIZE:
        raise stylize.ConfigError("size", f"must be at most {settings.OUTPUT_MAX_SIZE} px on this server, "
                                          f"not {config.size}")
    for name, value in NOT_OFFERED:
        if getattr(config, name) == value:
            offered = [v for v in field_info(name).metadata["choices"] if (name, v) not in NOT_OFFERED]
            raise stylize.ConfigError(name, f"{value!r} is not offered here; choose {' or '.join(offered)}")
    config.blend_weights(num_styles)  # one blend weight per style image, when given
    cost.check(config, num_styles)  # the GPU budget of one job (JOB_COST_BUDGET)
    return config


def create_job(owner, content: StyleImage, styles: Sequence[StyleImage], params: Mapping, *,
               priority: int = 0, batch: Batch | None = None, preset: str | None = None) -> StyleJob:
    """A queued job, sent to the `gpu` queue once the surrounding transaction commits.

    Raises stylize.ConfigError (bad params, `.field` names the option), JobInputError,
    JobLimitReached or QueueUnavailable. Inside an outer transaction the message goes out
    when that commits; the caller then asks check_sent().
    """
    styles = list(styles)
    _check_inputs(owner, content, styles, batch)
    config = validate_params(params, len(styles), preset)
    if not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise JobInputError(f"Priority must be between {MIN_PRIORITY} and {MAX_PRIORITY}.", "priority")
    if not broker.ping():
        raise QueueUnavailable()
    with transaction.atomic():
        # Locking the owner's row makes the count below and the insert one step for this
        # owner (PostgreSQL); SQLite's IMMEDIATE transactions serialise them anyway.
        list(get_user_model().objects.select_for_update().filter(pk=owner.pk).values_list("pk", flat=True))
        active = StyleJob.objects.filter(owner=owner, status__in=StyleJob.ACTIVE).count()
        if active >= settings.JOBS_PER_USER:
            raise JobLimitReached(
                f"You already have {active} jobs queued or running, the most allowed at once; "
                f"wait for one to finish or cancel one.")
        job = StyleJob.objects.create(
            owner=owner, batch=batch, priority=priority, params=config.to_dict(), content=content,
            max_attempts=settings.JOB_MAX_ATTEMPTS, task_id=new_task_id())
        JobStyle.objects.bulk_create(JobStyle(job=job, image=image, position=i) for i, image in enumerate(styles))
        send_on_commit(job, fail_unsent=True)
        _changed(job.pk)
    log.info("job %s created by user %s: %d style(s), size %d, priority %d",
             job.id, owner.pk, len(styles), config.size, priority)
    if not transaction.get_connection().in_atomic_block:  # committed, and the send tried
        check_sent([job.pk])
    return job


def check_sent(job_ids: Sequence) -> None:
    """Raise QueueUnavailable if the message of any of these new jobs could not be sent when
    they were committed (they are failed "not sent"; see dispatch.send_on_commit)."""
    if StyleJob.objects.filter(pk__in=job_ids, status=Status.FAILED, error=NOT_SENT_ERROR).exists():
        raise QueueUnavailable()


def check_style_count(count: int) -> None:
    """A job has one style image at least and JOB_MAX_STYLES at most (JobInputError on "styles").
    The API asks it before storing any uploaded file; create_job asks it again."""
    if count < 1:
        raise JobInputError("Choose at least one style image.", "styles")
    if count > settings.JOB_MAX_STYLES:
        raise JobInputError(f"Choose at most {settings.JOB_MAX_STYLES} style images.", "styles")


def _check_inputs(owner, content: StyleImage, styles: list[StyleImage], batch: Batch | None) -> None:
    if content.owner_id != owner.pk:
        raise JobInputError("The content image was not found among your images.", "content")
    check_style_count(len(styles))
    if any(style.owner_id != owner.pk for style in styles):
        raise JobInputError("A style image was not found among your images.", "styles")
    if batch is not None and batch.owner_id != owner.pk:
        raise JobInputError("The batch was not found among your batches.", "batch")


def resend(job_id, task_id: str) -> bool:
    """Send a queued job's message again, under a new id, because the broker does not hold it
    (reconcile.py). Conditional on the message the row names, so a job claimed or changed
    meanwhile is left alone, and a late copy of the old message can no longer claim it."""
    fresh_id = new_task_id()
    with transaction.atomic():
        rows = StyleJob.objects.filter(pk=job_id, status=Status.QUEUED, task_id=task_id).update(task_id=fresh_id)
        if rows:
            send_on_commit(StyleJob.objects.get(pk=job_id))
    if rows:
        log.warning("job %s: its message %s was not in the broker; sent again as %s", job_id, task_id, fresh_id)
    return bool(rows)


# -- the worker's side ----------------------------------------------------------------------

def claim(job_id, worker_host: str, task_id: str | None = None) -> StyleJob | None:
    """Mark the job running for this worker (one conditional UPDATE) and return it, or None if
    it is not this worker's to run: claimed by someone else, finished, cancelled, or out of attempts.

    With `task_id`, only the message the row names may claim it; that message may also
    take over a job left running by a worker that died (see the module docstring).
    """
    try:
        uuid.UUID(str(job_id))
    except ValueError:
        log.error("a message named job %r, which is not a job id; ignored", job_id)
        return None
    now = timezone.now()
    claimable = Q(status=Status.QUEUED)
    if task_id:
        claimable = Q(task_id=task_id) & (claimable | _abandoned(worker_host))
    job = _take(claimable, job_id, worker_host)
    if job is not None:
        return job
    exhausted = list(StyleJob.objects.filter(claimable, pk=job_id, attempts__gte=F("max_attempts")))
    for job in exhausted:
        # One transaction: whoever sees the job failed also sees its last attempt ended as lost.
        with transaction.atomic():
            rows = StyleJob.objects.filter(claimable, pk=job_id, attempts=job.attempts).update(
                status=Status.FAILED, finished=now, eta_seconds=None,
                error=f"Stopped after {job.attempts} attempts; the last one did not finish because the worker "
                      f"running it was lost (for example killed for using too much memory).")
            if rows:
                _end_attempt(job_id, Outcome.LOST)
        if rows:
            _changed(job_id)
            log.warning("job %s failed: out of attempts (%d)", job_id, job.attempts)
            _delete_checkpoint(job_id)
            return None
    log.info("job %s not claimed by %s: not queued for this message", job_id, worker_host)
    return None


def claim_partner(job_id, worker_host: str, task_id: str) -> StyleJob | None:
    """Claim a queued job to run in the batch of the message `task_id` (webapp/worker/batching.py);
    None if it is no longer queued. As claim(), and the row then names the batch's message: the
    job's own message, when it arrives, finds it not its to run (claim() and takeover_delay() say
    None), and if the batch's worker is lost, the batch's message takes it over with the rest
    (claim() with that task_id). Only a job without a checkpoint: one that would resume runs alone."""
    return _take(Q(status=Status.QUEUED, checkpoint=""), job_id, worker_host, task_id=task_id)


def batch_members(task_id: str, lead_id) -> list:
    """The ids of the running jobs the message `task_id` claimed besides its own job (a batch)."""
    if not task_id:
        return []
    return list(StyleJob.objects.filter(task_id=task_id, status=Status.RUNNING).exclude(pk=lead_id)
                .order_by("created").values_list("pk", flat=True))


def _take(claimable: Q, job_id, worker_host: str, **fields) -> StyleJob | None:
    """The conditional UPDATE of a claim, its attempt row and its event; the job, or None."""
    now = timezone.now()
    # One transaction, so the row read back is the one this UPDATE wrote (the row stays locked
    # until commit): another claim in between would otherwise give both the same attempt.
    with transaction.atomic():
        claimed = StyleJob.objects.filter(claimable, pk=job_id, attempts__lt=F("max_attempts")).update(
            status=Status.RUNNING, attempts=F("attempts") + 1, started=now, last_heartbeat=Now(),
            worker_host=worker_host[:255], finished=None, error="", error_traceback="", **fields)
        job = StyleJob.objects.select_related("content").get(pk=job_id) if claimed else None
        if job is not None:
            _end_attempt(job.pk, Outcome.LOST)  # the attempt this one takes over, if any
            JobAttempt.objects.create(job=job, number=job.attempts, worker_host=job.worker_host, started=now)
            _changed(job.pk)
    if job is not None:
        log.info("job %s claimed by %s (attempt %d of %d)", job_id, worker_host, job.attempts, job.max_attempts)
    return job


def _abandoned(worker_host: str) -> Q:
    """A running job its message may take over: the message came back to the node that ran it
    (that node's pool process died: reject_on_worker_lost), or the job's worker has been silent
    for STUCK_AFTER_SECONDS. A message that comes back to another node while the job's worker
    still reports (Redis re-delivers after visibility_timeout) must not start a second run."""
    return Q(status=Status.RUNNING) & (Q(worker_host=worker_host[:255]) | _silent_since(None))


def _this_attempt(job: StyleJob) -> QuerySet:
    """The job's row, only while `job` (as claimed) still holds it."""
    return StyleJob.objects.filter(pk=job.pk, status=Status.RUNNING, attempts=job.attempts)


def report_progress(job: StyleJob, fields: Mapping) -> bool:
    """Write progress fields and the heartbeat; False if the claim is no longer valid."""
    unknown = set(fields) - PROGRESS_FIELDS
    if unknown:
        raise ValueError(f"not progress fields: {', '.join(sorted(unknown))}")
    return bool(_this_attempt(job).update(**fields, last_heartbeat=Now()))


def beat(job: StyleJob) -> bool:
    """The running job's heartbeat, stamped with the database's clock (every machine compares
    with that one clock, so a worker's wrong clock cannot make a live job look lost or a dead one
    alive); False once this attempt no longer holds the job."""
    return bool(_this_attempt(job).update(last_heartbeat=Now()))


def takeover_delay(job_id, task_id: str, worker_host: str) -> float | None:
    """For a message claim() just refused: seconds until it may take the job over, when the job is
    running elsewhere under this very message and its heartbeat is still fresh (the message came
    back because the worker process running it died, but the heartbeat has not aged past
    STUCK_AFTER_SECONDS yet; or it is a duplicate of a message whose job is alive). None when it
    never may: finished, queued under another message, out of attempts. Ages by the database's clock."""
    row = (StyleJob.objects.filter(pk=job_id, status=Status.RUNNING, task_id=task_id,
                                   attempts__lt=F("max_attempts"), last_heartbeat__isnull=False)
           .exclude(worker_host=worker_host[:255])
           .annotate(age=Now() - F("last_heartbeat")).values_list("age", flat=True).first())
    if row is None:
        return None
    return max(1.0, settings.STUCK_AFTER_SECONDS - row.total_seconds() + 1.0)


def should_cancel(job_id) -> bool:
    return StyleJob.objects.filter(pk=job_id, cancel_requested=True).exists()


def finish(job: StyleJob, result: stylize.Result, *, result_name: str, artifacts: Mapping[str, str],
           loss_history: list) -> bool:
    """Mark the job succeeded with its stored result and visualisations (`artifacts`: name →
    storage name). A cancel that arrives after the last iteration is too late: the work is done.
    False if the claim was lost meanwhile (the caller then deletes what it stored)."""
    now = timezone.now()
    meta = result.metadata()
    last = result.history[-1] if result.history else {}
    with transaction.atomic():
        rows = _this_attempt(job).update(
            status=Status.SUCCEEDED, finished=now, last_heartbeat=Now(), result=result_name, progress=1.0,
            step=F("total_steps"), iteration=F("iterations"), eta_seconds=0.0, elapsed_seconds=result.elapsed,
            loss=finite_float(last.get("loss")), loss_history=loss_history, seed=meta["seed"],
            engine_version=meta["engine_version"], weights_sha256=meta["weights_sha256"],
            cancel_requested=False, error="", error_traceback="")
        if not rows:
            return False
        _end_attempt(job.pk, Outcome.SUCCEEDED)
        JobArtifact.objects.filter(job_id=job.pk).delete()  # left by an attempt that died while saving
        JobArtifact.objects.bulk_create(
            JobArtifact(job_id=job.pk, name=name, file=file, position=i)
            for i, (name, file) in enumerate(artifacts.items()))
        _changed(job.pk)
    log.info("job %s succeeded in %.1f s (attempt %d)", job.pk, result.elapsed, job.attempts)
    _delete_checkpoint(job.pk)
    return True


def fail(job: StyleJob, error: str, traceback: str = "", retryable: bool = False) -> str:
    """End the attempt with an error shown to the owner; returns the job's new status.

    `retryable` (a passing fault such as a storage hiccup) queues the job again, with a
    short delay, while it has attempts left; it resumes from its checkpoint.
    """
    error, traceback = error[:_ERROR_MAX_CHARS], traceback[-_TRACEBACK_MAX_CHARS:]
    if retryable and job.attempts < job.max_attempts:
        task_id = new_task_id()
        with transaction.atomic():
            rows = _this_attempt(job).update(status=Status.QUEUED, task_id=task_id, worker_host="",
                                             eta_seconds=None, error=error, error_traceback=traceback)
            if rows:
                job.task_id = task_id
                _end_attempt(job.pk, Outcome.RETRIED, error)
                send_on_commit(job, countdown=min(60, 10 * job.attempts))
                _changed(job.pk)
        if rows:
            log.warning("job %s attempt %d failed (%s); queued again", job.pk, job.attempts, error)
            return Status.QUEUED
    rows = _this_attempt(job).update(status=Status.FAILED, finished=timezone.now(), eta_seconds=None,
                                     error=error, error_traceback=traceback)
    if rows:
        _end_attempt(job.pk, Outcome.FAILED, error)
        _changed(job.pk)
    if not rows:
        log.info("job %s: failure after its claim was lost, not recorded: %s", job.pk, error)
        raise JobSuperseded(str(job.pk))
    log.warning("job %s failed: %s", job.pk, error)
    _delete_checkpoint(job.pk)
    return Status.FAILED


def confirm_cancelled(job: StyleJob) -> bool:
    """The worker stopped a job whose owner asked it to (it raised stylize.Cancelled)."""
    rows = _this_attempt(job).update(status=Status.CANCELLED, finished=timezone.now(), eta_seconds=None)
    if rows:
        _end_attempt(job.pk, Outcome.CANCELLED)
        _changed(job.pk)
        log.info("job %s cancelled while running (attempt %d)", job.pk, job.attempts)
        _delete_checkpoint(job.pk)
    return bool(rows)


def fail_lost_task(job_id, task_id: str, error: str) -> bool:
    """Fail the running jobs of a message whose worker process was killed (hard time limit): its
    job and the batch it claimed, if any; called by Celery's main process, which knows only the job
    id and the message. True if any was failed."""
    failed = False
    for pk in [job_id, *batch_members(task_id, job_id)]:
        rows = StyleJob.objects.filter(pk=pk, status=Status.RUNNING, task_id=task_id).update(
            status=Status.FAILED, finished=timezone.now(), eta_seconds=None, error=error[:_ERROR_MAX_CHARS])
        if rows:
            failed = True
            log.warning("job %s failed: %s", pk, error)
            _end_attempt(pk, Outcome.FAILED, error)
            _changed(pk)
            _delete_checkpoint(pk)
    return failed


# -- a person's (or an admin's) side ------------------------------------------------------------

def cancel(job: StyleJob) -> str:
    """Cancel a job: a queued one at once; a running one by asking its worker, which stops after
    the iteration it is in (it reads the flag after each); a running one whose worker has
    been silent for STUCK_AFTER_SECONDS at once. Returns the status after the call ("running"
    means the worker has been asked). Cancelling a cancelled job does nothing."""
    now = timezone.now()
    rows = StyleJob.objects.filter(pk=job.pk, status=Status.QUEUED).update(
        status=Status.CANCELLED, finished=now, eta_seconds=None)
    if not rows:
        rows = _stale_running(job.pk).update(status=Status.CANCELLED, finished=now, eta_seconds=None,
                                             cancel_requested=True)
        if rows:
            _end_attempt(job.pk, Outcome.CANCELLED)
            _delete_checkpoint(job.pk)
    if not rows:
        StyleJob.objects.filter(pk=job.pk, status=Status.RUNNING).update(cancel_requested=True)
    job.refresh_from_db()
    if job.status in (Status.SUCCEEDED, Status.FAILED):
        raise JobStateError(f"This job has already {job.status}; there is nothing to cancel.")
    _changed(job.pk)
    log.info("job %s: cancel requested (now %s)", job.pk, job.status)
    return job.status


def requeue(job: StyleJob, *, reset_attempts: bool = True) -> StyleJob:
    """Queue a failed, cancelled or stuck running job again (with a new message). A stuck job
    resumes from its checkpoint; the others start over. `reset_attempts=False` keeps the
    attempts count (an automatic sweep must not lift the cap on jobs that kill workers)."""
    updates = {"status": Status.QUEUED, "task_id": new_task_id(), "cancel_requested": False,
               "finished": None, "worker_host": "", "eta_seconds": None, "error": "", "error_traceback": ""}
    if reset_attempts:
        updates["attempts"] = 0
    requeueable = Q(status__in=(Status.FAILED, Status.CANCELLED)) | Q(pk__in=_stale_running(job.pk).values("pk"))
    with transaction.atomic():
        rows = StyleJob.objects.filter(requeueable, pk=job.pk).update(**updates)
        job.refresh_from_db()
        if not rows:
            raise JobStateError(f"Only failed, cancelled or stuck jobs can be queued again; this one is "
                                f"{job.status}.")
        _end_attempt(job.pk, Outcome.REQUEUED)  # a stuck one's; the others' have ended already
        send_on_commit(job)
        _changed(job.pk)
    log.info("job %s queued again (attempts %d of %d)", job.pk, job.attempts, job.max_attempts)
    return job


def set_priority(job: StyleJob, priority: int) -> StyleJob:
    """Change a job's priority (clamped to -9 … 9). A queued job is sent again in its new lane
    with a new message id, so the message in the old lane is stale and does nothing."""
    priority = max(MIN_PRIORITY, min(MAX_PRIORITY, priority))
    task_id = new_task_id()
    with transaction.atomic():
        resent = StyleJob.objects.filter(pk=job.pk, status=Status.QUEUED, task_id=job.task_id).update(
            priority=priority, task_id=task_id)
        if not resent:
            StyleJob.objects.filter(pk=job.pk).update(priority=priority)
        job.refresh_from_db()
        if resent:
            send_on_commit(job)
    log.info("job %s: priority %d (%s)", job.pk, priority, "sent again" if resent else job.status)
    return job


def delete_job(job: StyleJob) -> None:
    """Delete a job and every file it produced. A queued job is cancelled first; a running one
    must stop before (JobStateError): its worker would otherwise write files after they are gone."""
    if job.status in StyleJob.ACTIVE and cancel(job) == Status.RUNNING:
        raise JobStateError("The job is running; it has been asked to stop. Delete it once it has.")
    # A copy keeps the id (delete() clears it); its files are all under results/<id>/ and
    # checkpoints/<id>/, so they are found after the rows are gone.
    files_of = copy.copy(job)
    with transaction.atomic():
        transaction.on_commit(lambda: storage.delete_job_files(files_of))
        JobStyle.objects.filter(job=job).delete()
        job.delete()
    log.info("job %s deleted", files_of.pk)


def stuck_jobs(threshold_seconds: float | None = None) -> QuerySet:
    """Running jobs whose worker has not reported for `threshold_seconds` (STUCK_AFTER_SECONDS)."""
    return StyleJob.objects.filter(status=Status.RUNNING).filter(_silent_since(threshold_seconds))


def _stale_running(job_id) -> QuerySet:
    return StyleJob.objects.filter(pk=job_id, status=Status.RUNNING).filter(_silent_since(None))


def _silent_since(threshold_seconds: float | None) -> Q:
    """Silent for `threshold_seconds` (STUCK_AFTER_SECONDS) by the database's clock, the one that
    stamped the heartbeats (beat())."""
    seconds = settings.STUCK_AFTER_SECONDS if threshold_seconds is None else threshold_seconds
    cutoff = Now() - timedelta(seconds=seconds)
    return Q(last_heartbeat__lt=cutoff) | Q(last_heartbeat__isnull=True, started__lt=cutoff)


def _changed(job_id) -> None:
    """Tell the job's watchers its new state (live.py) once this transition is committed."""
    transaction.on_commit(lambda: live.publish_row(job_id))


def _end_attempt(job_id, outcome: str, error: str = "") -> None:
    """Close the job's open attempt record (there is at most one)."""
    JobAttempt.objects.filter(job_id=job_id, ended__isnull=True).update(
        ended=timezone.now(), outcome=outcome, error=error[:_ERROR_MAX_CHARS])


def _delete_checkpoint(job_id) -> None:
    """A finished job will not be resumed: its checkpoint (easily hundreds of MB with the
    L-BFGS history) goes."""
    names = list(StyleJob.objects.filter(pk=job_id).values_list("checkpoint", flat=True))
    if names and names[0]:
        StyleJob.objects.filter(pk=job_id, checkpoint=names[0]).update(checkpoint="")
        transaction.on_commit(lambda: storage.delete_files(names))
