"""URLs: the pages, the admin and a health check (the REST API is added here later)."""

from __future__ import annotations

import logging

from django.contrib import admin
from django.db import connection
from django.http import JsonResponse
from django.urls import include, path
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

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


urlpatterns = [
    path("admin/", admin.site.urls),
    path("health/", health, name="health"),
    path("api/", include("webapp.api.urls")),
    path("", include("webapp.page_urls")),  # the browser pages
]
