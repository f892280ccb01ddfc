"""The staff queue dashboard (a page in the admin), the JSON behind it, its requeue button,
and /metrics for Prometheus.

The page and its JSON are wrapped in admin.site.admin_view (webapp/urls.py): staff only,
others are sent to the admin's login. /metrics answers a staff session or a scraper that
sends `Authorization: Bearer <METRICS_TOKEN>`.
"""

from __future__ import annotations

import hmac
import logging
import uuid

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from ..jobs import lifecycle
from . import metrics as prometheus, monitoring

log = logging.getLogger(__name__)

REFRESH_SECONDS = 5


@never_cache
@require_GET
def queue_dashboard(request):
    context = {**admin.site.each_context(request), "title": "Queue dashboard", "snapshot": monitoring.snapshot(),
               "refresh_seconds": REFRESH_SECONDS,
               "can_requeue": request.user.has_perm("webapp.change_stylejob")}
    return render(request, "admin/queue_dashboard.html", context)


@never_cache
@require_GET
def queue_data(request):
    return JsonResponse(monitoring.snapshot(), encoder=DjangoJSONEncoder)


@require_POST
def requeue_stuck(request):
    """Requeue the stuck jobs named in the form (`job`, repeated), through lifecycle.requeue like the
    admin's action; a job that is no longer stuck is left alone and said so."""
    if not request.user.has_perm("webapp.change_stylejob"):
        raise PermissionDenied
    ids = request.POST.getlist("job")
    stuck = {str(job.pk): job for job in lifecycle.stuck_jobs().filter(pk__in=_valid_ids(ids))}
    requeued = 0
    for job in stuck.values():
        try:
            lifecycle.requeue(job)
            requeued += 1
        except lifecycle.JobError as exc:
            messages.warning(request, f"Job {str(job.pk)[:8]} not requeued: {exc}")
    if requeued:
        messages.success(request, f"Requeued {requeued} stuck job(s); they resume from their checkpoints.")
    left = len(set(ids) - set(stuck))
    if left:
        messages.info(request, f"{left} job(s) were no longer stuck and were left alone.")
    return redirect("queue_dashboard")


def _valid_ids(ids: list[str]) -> list[uuid.UUID]:
    """The well-formed job ids among `ids` (a malformed one names no job)."""
    valid = []
    for value in ids:
        try:
            valid.append(uuid.UUID(value))
        except ValueError:
            continue
    return valid


@never_cache
@require_GET
def metrics(request):
    if not _may_scrape(request):
        # A person logged in without staff rights is refused (403); no credentials asks for them (401).
        status = 403 if request.user.is_authenticated else 401
        response = HttpResponse("Staff login or a metrics token is required.\n", status=status,
                                content_type="text/plain; charset=utf-8")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(prometheus.render(), content_type=prometheus.CONTENT_TYPE)


def _may_scrape(request) -> bool:
    if request.user.is_authenticated and request.user.is_staff:
        return True
    token = settings.METRICS_TOKEN
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # As bytes: compare_digest refuses str with non-ASCII characters (a TypeError, answered 500).
    return bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode("utf-8", "surrogatepass"), token.encode("utf-8", "surrogatepass"))
