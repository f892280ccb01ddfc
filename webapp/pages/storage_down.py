"""503, not 500, while the file store cannot be reached (the bucket's server down, the network to
it away): the person's request was fine and will work again, and a load balancer or client that
sees 503 knows to retry later. Applies to every view, the pages' and the API's: a view that
reads a stored file raises storage.StorageUnavailable (webapp/jobs/storage.py)."""

from __future__ import annotations

import logging

from django.http import HttpResponse, JsonResponse

from ..jobs.storage import StorageUnavailable
from .middleware import BothModes

log = logging.getLogger(__name__)

MESSAGE = "Stored files cannot be reached right now. Please try again in a minute."
RETRY_AFTER_SECONDS = 30


class StorageDownMiddleware(BothModes):
    def process_exception(self, request, exception):
        if not isinstance(exception, StorageUnavailable):
            return None
        log.warning("503 for %s: %s", request.path, exception)
        if request.path.startswith("/api/"):
            response = JsonResponse({"detail": MESSAGE}, status=503)
        else:
            response = HttpResponse(MESSAGE, status=503, content_type="text/plain; charset=utf-8")
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        response["X-Content-Type-Options"] = "nosniff"
        return response
