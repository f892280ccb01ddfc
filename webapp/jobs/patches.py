"""The nine patches that excite a unit, asked for by a finished job's owner: recorded here, computed
by a worker (webapp/worker/patches.py, on the `patches` queue), served by the job page.

The web process computes nothing (it needs no torch and no GPU for it): ask() records the
request as a UnitPatches row and sends its message; the page polls the same URL until the
picture is there. Each of ~5 500 layer/unit pairs of a job could be asked for, so:

* a person may ask for PATCHES_PER_HOUR new pictures an hour (PatchesRefused 429), counted in
  the "throttle" cache like failed logins (if that cannot be reached, the request is let through);
* a job keeps PATCHES_PER_JOB pictures: asking for one more deletes the oldest;
* with no worker online (no heartbeat within WORKER_OFFLINE_AFTER_SECONDS) or the broker
  unreachable, nothing is recorded and the request is refused with a 503 that says so;
* a request still waiting after PATCHES_WAIT_SECONDS (its message lost, say) is sent again under a
  new message id, so the old message, should it turn up, computes nothing.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.cache import caches
from django.db import transaction
from django.db.models.functions import Now

from ..celery import app
from ..models import StyleJob, UnitPatches, WorkerHeartbeat
from ..queue import broker
from ..queue.lanes import PATCHES_QUEUE, PATCHES_TASK_NAME
from . import storage

log = logging.getLogger(__name__)

THROTTLE_WINDOW_SECONDS = 3600


@dataclass
class PatchesRefused(Exception):
    """The request cannot be taken now; `status` is the HTTP status to answer with."""

    message: str
    status: int

    def __str__(self) -> str:
        return self.message


def ask(job: StyleJob, layer: str, unit: int) -> UnitPatches:
    """The row of this picture: ready (`file`), failed (`error`), or waiting for a worker (neither),
    sent now if it was not asked for before. Raises PatchesRefused."""
    found = UnitPatches.objects.filter(job=job, layer=layer, unit=unit).first()
    if found is not None:
        if found.file or found.error or not _overdue(found):
            return found
        log.warning("job %s: patches of %s unit %d waited over %d s; asked again", job.pk, layer, unit,
                    settings.PATCHES_WAIT_SECONDS)
        return _send_again(found)
    _check_capacity(job.owner_id)
    with transaction.atomic():
        row, created = UnitPatches.objects.get_or_create(job=job, layer=layer, unit=unit,
                                                         defaults={"task_id": _new_task_id(), "requested": Now()})
        if created:
            _count(job.owner_id)
            _make_room(job, keep=row)
            transaction.on_commit(lambda: _send(row.pk, row.task_id))
    return row


def _overdue(row: UnitPatches) -> bool:
    wait = timedelta(seconds=settings.PATCHES_WAIT_SECONDS)
    return UnitPatches.objects.filter(pk=row.pk, requested__lt=Now() - wait).exists()


def forget_failure(row: UnitPatches) -> None:
    """A failed picture's error has been shown: the next request asks again."""
    UnitPatches.objects.filter(pk=row.pk, file="").exclude(error="").delete()


def _check_capacity(owner_id) -> None:
    try:
        used = caches["throttle"].get(_throttle_key(owner_id), 0)
    except Exception:
        log.warning("patches throttle not checked: the throttle cache cannot be read", exc_info=True)
        used = 0
    if used >= settings.PATCHES_PER_HOUR:
        raise PatchesRefused(f"You have asked for {settings.PATCHES_PER_HOUR} new patch pictures within the hour, "
                             f"the most allowed; pictures already made still show. Try again later.", 429)
    offline_after = timedelta(seconds=settings.WORKER_OFFLINE_AFTER_SECONDS)
    if not WorkerHeartbeat.objects.filter(last_seen__gte=Now() - offline_after).exists():
        raise PatchesRefused("No worker is running right now to compute the patches; try again in a few minutes.",
                             503)
    if not broker.ping():
        raise PatchesRefused("The job queue is unavailable right now; try again in a minute.", 503)


def _count(owner_id) -> None:
    cache = caches["throttle"]
    try:
        cache.add(_throttle_key(owner_id), 0, timeout=THROTTLE_WINDOW_SECONDS)  # starts the window
        cache.incr(_throttle_key(owner_id))
    except Exception:
        log.warning("patches request not counted: the throttle cache cannot be written", exc_info=True)


def _throttle_key(owner_id) -> str:
    return f"patches:user:{owner_id}"


def _make_room(job: StyleJob, keep: UnitPatches) -> None:
    """At most PATCHES_PER_JOB pictures per job: the oldest others go, files and all."""
    rows = list(UnitPatches.objects.filter(job=job).exclude(pk=keep.pk).order_by("-requested", "-pk"))
    extra = rows[settings.PATCHES_PER_JOB - 1:]
    if extra:
        names = [row.file.name for row in extra if row.file.name]
        UnitPatches.objects.filter(pk__in=[row.pk for row in extra]).delete()
        transaction.on_commit(lambda: storage.delete_files(names))
        log.info("job %s: %d older patch picture(s) deleted to keep %d", job.pk, len(extra), settings.PATCHES_PER_JOB)


def _send_again(row: UnitPatches) -> UnitPatches:
    task_id = _new_task_id()
    with transaction.atomic():
        if UnitPatches.objects.filter(pk=row.pk, task_id=row.task_id, file="", error="").update(
                task_id=task_id, requested=Now()):
            transaction.on_commit(lambda: _send(row.pk, task_id))
    return UnitPatches.objects.get(pk=row.pk)


def _send(row_id: int, task_id: str) -> None:
    try:
        app.send_task(PATCHES_TASK_NAME, args=[row_id], task_id=task_id, queue=PATCHES_QUEUE,
                      time_limit=None, soft_time_limit=None)
    except Exception as exc:  # the next poll after PATCHES_WAIT_SECONDS sends it again
        log.error("patches request %s not sent: %s", row_id, exc)


def _new_task_id() -> str:
    return str(uuid.uuid4())
