"""What the page views share: owner-only look-ups, and small request helpers."""

from __future__ import annotations

from django.http import Http404
from django.shortcuts import get_object_or_404

from ...models import StyleImage, StyleJob


def own_job(request, job_id) -> StyleJob:
    """The logged-in person's job, or 404 (another person's job does not exist for them).
    Staff who may view jobs in the admin see everyone's (the admin links its files here)."""
    return get_object_or_404(StyleJob.objects.select_related("content"), pk=job_id,
                             **_owned_by(request, "view_stylejob"))


def own_image(request, image_id) -> StyleImage:
    return get_object_or_404(StyleImage, pk=image_id, **_owned_by(request, "view_styleimage"))


def _owned_by(request, permission: str) -> dict:
    user = request.user
    if user.is_staff and user.has_perm(f"webapp.{permission}"):
        return {}
    return {"owner": user}


def wants_json(request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def require(condition: bool) -> None:
    if not condition:
        raise Http404
