"""Deleting an uploaded image, which frees its owner's storage quota (jobs/quota.py).

Not while a queued or running job uses it (ImageInUse: the worker reads it). A finished job
cannot be reproduced without its inputs (the models keep them with RESTRICT), so the finished
jobs made from the image, as content or style, are deleted with it, files and all, through
lifecycle.delete_job like any other job deletion.
"""

from __future__ import annotations

import logging

from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Q

from ..models import StyleImage, StyleJob
from . import lifecycle, storage

log = logging.getLogger(__name__)


class ImageInUse(lifecycle.JobStateError):
    """A queued or running job uses the image."""


def jobs_using(image: StyleImage):
    return StyleJob.objects.filter(Q(content=image) | Q(style_links__image=image)).distinct()


def delete_image(image: StyleImage) -> int:
    """Delete the image, its thumbnails and the finished jobs made from it; returns how many jobs
    went with it. Raises ImageInUse while a queued or running job uses it."""
    image_id = image.pk
    with transaction.atomic():
        active = jobs_using(image).filter(status__in=StyleJob.ACTIVE).count()
        if active:
            raise ImageInUse(f"{active} queued or running job(s) use this image; cancel them (and let them stop) "
                             f"before deleting it.")
        finished = list(jobs_using(image))
        for job in finished:
            lifecycle.delete_job(job)
        names = [image.file.name] + _thumbnails_of(image)
        transaction.on_commit(lambda: storage.delete_files(names))
        image.delete()
    log.info("image %s deleted with %d finished job(s)", image_id, len(finished))
    return len(finished)


def _thumbnails_of(image: StyleImage) -> list[str]:
    """thumbnails/<image id>-<px>.jpg, made by the pages on first view."""
    try:
        _, files = default_storage.listdir("thumbnails")
    except (OSError, NotImplementedError):
        return []
    return [f"thumbnails/{name}" for name in files if name.startswith(f"{image.pk}-")]
