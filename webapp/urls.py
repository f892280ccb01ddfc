"""URLs: the pages, the REST API, the admin with its queue dashboard, /metrics and a health check."""

from __future__ import annotations

import logging

from django.contrib import admin
from django.db import connection
from django.http import JsonResponse
from django.urls import include, path
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from .staff import dashboard

log = logging.getLogger(__name__)


@never_cache
@require_GET
def health(request):
    """200 when the web process can reach its database; 503 otherwise (for load balancers and
    container health checks; it says nothing about the workers)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:
        log.exception("health check: database unreachable")
        return JsonResponse({"status": "error", "database": "unreachable"}, status=503)
    return JsonResponse({"status": "ok", "database": "ok"})


# Django's refusals of request bodies (too large, too many fields) as a 413/400 that says so.
handler400 = "webapp.pages.request_limits.bad_request"

urlpatterns = [
    # Before admin/: the admin's catch-all would answer these. admin_view = staff only.
    path("admin/queue/", admin.site.admin_view(dashboard.queue_dashboard), name="queue_dashboard"),
    path("admin/queue/data.json", admin.site.admin_view(dashboard.queue_data), name="queue_data"),
    path("admin/queue/requeue-stuck/", admin.site.admin_view(dashboard.requeue_stuck), name="queue_requeue_stuck"),
    path("admin/", admin.site.urls),
    path("metrics", dashboard.metrics, name="metrics"),
    path("health/", health, name="health"),
    path("api/", include("webapp.api.urls")),
    path("", include("webapp.pages.urls")),  # the browser pages
]
