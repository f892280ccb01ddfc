"""Retention: what the service stores is deleted once it is old enough (off by default).

With RETENTION_DAYS > 0, a sweep (run by the reconciler's loop at most every
RETENTION_EVERY_SECONDS; `manage.py reconcile_jobs`) deletes

1. the files of every job that finished more than RETENTION_DAYS ago: result, previews,
   checkpoint, visualisations, patch pictures, thumbnails. The job's row stays (its params, seed,
   times and error remain to be seen) without them; the pages then show no result;
2. orphans: files under uploads/, thumbnails/, results/ and checkpoints/ that no row refers to
   and that are older than RETENTION_ORPHAN_GRACE_SECONDS. They are what crashes leave behind: a
   checkpoint a killed worker was uploading, a preview stored just before its claim was lost, the
   files of a job deleted while the bucket was unreachable. The grace covers a file that has been
   stored and is about to be recorded.

Uploaded images are kept as long as their row (the person's image library); their orphans go.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.db.models.functions import Now
from django.utils import timezone

from ..models import JobArtifact, StyleImage, StyleJob, UnitPatches
from . import storage
from .present import version

log = logging.getLogger(__name__)

BATCH = 200  # jobs per query
_JOB_FOLDER = re.compile(r"^(results|checkpoints)/([0-9a-f-]{36})/")
_IMAGE_THUMBNAIL = re.compile(r"^thumbnails/([0-9a-f-]{36})-\d+\.jpg$")
_last_sweep: float | None = None


@dataclass
class Swept:
    expired_jobs: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"files of {len(self.expired_jobs)} expired job(s) and {len(self.orphans)} orphan file(s) deleted"


def maybe_sweep() -> Swept | None:
    """sweep() if retention is on and the last one in this process was RETENTION_EVERY_SECONDS ago."""
    global _last_sweep
    if settings.RETENTION_DAYS <= 0:
        return None
    if _last_sweep is not None and time.monotonic() - _last_sweep < settings.RETENTION_EVERY_SECONDS:
        return None
    _last_sweep = time.monotonic()
    return sweep()


def sweep() -> Swept:
    swept = Swept()
    if settings.RETENTION_DAYS <= 0:
        return swept
    swept.expired_jobs = _expire_jobs()
    swept.orphans = _delete_orphans()
    if swept.expired_jobs or swept.orphans:
        log.info("retention: %s", swept)
    return swept


def _expire_jobs() -> list[str]:
    cutoff = Now() - timedelta(days=settings.RETENTION_DAYS)
    with_files = (Q(result__gt="") | Q(preview__gt="") | Q(checkpoint__gt="") | Q(artifacts__isnull=False)
                  | Q(unit_patches__isnull=False))
    expired = []
    while True:
        jobs = list(StyleJob.objects.filter(with_files, status__in=StyleJob.FINISHED, finished__lt=cutoff)
                    .distinct().order_by("finished", "pk")[:BATCH])
        if not jobs:
            return expired
        for job in jobs:
            storage.delete_job_files(job)
            JobArtifact.objects.filter(job=job).delete()
            UnitPatches.objects.filter(job=job).delete()
            StyleJob.objects.filter(pk=job.pk).update(result="", preview="", checkpoint="")
            expired.append(str(job.pk))


def _delete_orphans() -> list[str]:
    grace = timezone.now() - timedelta(seconds=settings.RETENTION_ORPHAN_GRACE_SECONDS)
    old = [name for prefix in ("uploads", "thumbnails", "results", "checkpoints")
           for name, modified in storage.list_files(prefix) if modified < grace]
    referenced = _referenced(old)
    orphans = [name for name in old if name not in referenced]
    storage.delete_files(orphans)
    return orphans


def _referenced(names: list[str]) -> set[str]:
    """Of `names`, those a row refers to (or derives, as a result's thumbnail)."""
    job_ids = {m[2] for m in map(_JOB_FOLDER.match, names) if m}
    image_ids = {m[1] for m in map(_IMAGE_THUMBNAIL.match, names) if m}
    kept = set(StyleImage.objects.filter(file__in=[n for n in names if n.startswith("uploads/")])
               .values_list("file", flat=True))
    images = {str(pk) for pk in StyleImage.objects.filter(pk__in=image_ids).values_list("pk", flat=True)}
    kept |= {n for n in names if (m := _IMAGE_THUMBNAIL.match(n)) and m[1] in images}
    for job in StyleJob.objects.filter(pk__in=job_ids):
        kept |= {job.result.name, job.preview.name, job.checkpoint.name}
        if job.result.name:
            kept.add(f"results/{job.pk}/thumbnail-{version(job.result.name)}.jpg")
    kept |= set(JobArtifact.objects.filter(job_id__in=job_ids).values_list("file", flat=True))
    kept |= set(UnitPatches.objects.filter(job_id__in=job_ids).exclude(file="").values_list("file", flat=True))
    return kept - {""}
