"""DRF throttling with its counters in the "throttle" cache (Redis when REDIS_URL is set)."""

import logging

from django.conf import settings
from django.core.cache import caches
from rest_framework.throttling import UserRateThrottle

log = logging.getLogger(__name__)


class PersonRateThrottle(UserRateThrottle):
    """API_THROTTLE_RATE requests per person (per IP for anonymous requests, which get 401 anyway)."""

    scope = "person"

    @property
    def cache(self):
        return caches["throttle"]

    def allow_request(self, request, view):
        # Fail open: with Redis away, a request is let through uncounted rather than answered
        # 500, so a job submission gets its clear 503 and reading one's jobs still works.
        try:
            return super().allow_request(request, view)
        except Exception as exc:
            log.warning("request rate not checked: the throttle cache cannot be reached (%s)", exc)
            return True


class UploadRateThrottle(PersonRateThrottle):
    """API_UPLOAD_THROTTLE_RATE multipart POSTs (the requests that carry image files: images/,
    jobs/ with content_file or style_files) per person, on top of API_THROTTLE_RATE: each file
    is decoded and re-encoded, so they get a lower rate. Counted from the content type alone,
    before the body is parsed or anything stored. The rate is read at each request."""

    scope = "upload"

    def get_rate(self):
        return settings.API_UPLOAD_THROTTLE_RATE

    def allow_request(self, request, view):
        if request.method != "POST" or not request.content_type.startswith("multipart/"):
            return True
        return super().allow_request(request, view)
