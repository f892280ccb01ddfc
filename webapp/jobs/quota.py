"""How many bytes of uploaded images a person keeps, and the most they may (STORAGE_QUOTA_BYTES).

Counted from StyleImage.stored_bytes (the re-encoded file as stored), one SUM per upload.
Results and visualisations are not counted: they are bounded by the jobs a person may run
(JOBS_PER_USER at once, JOB_COST_BUDGET each) and go with the job when it is deleted.
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import Sum

import stylize

from ..models import StyleImage


class QuotaExceeded(stylize.ImageError):
    """Storing this upload would take its owner past STORAGE_QUOTA_BYTES: a 413, as a file too
    large is (the API's errors.image_error, the pages' NewJobForm.error_status)."""


def usage(owner) -> int:
    return StyleImage.objects.filter(owner=owner).aggregate(total=Sum("stored_bytes"))["total"] or 0


def check(owner, adding: int) -> None:
    """Raise QuotaExceeded, with the numbers, if `adding` more bytes do not fit."""
    used, quota = usage(owner), settings.STORAGE_QUOTA_BYTES
    if used + adding > quota:
        raise QuotaExceeded(
            f"This image needs {_mb(adding)} MB, and your images already use {_mb(used)} MB of your "
            f"{_mb(quota)} MB; delete some of them to make room")


def _mb(size: int) -> str:
    return f"{size / 1e6:.3g}"
