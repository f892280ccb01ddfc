"""DRF throttling with its counters in the "throttle" cache (Redis when REDIS_URL is set)."""

from django.core.cache import caches
from rest_framework.throttling import UserRateThrottle


class PersonRateThrottle(UserRateThrottle):
    """API_THROTTLE_RATE requests per person (per IP for anonymous requests, which get 401 anyway)."""

    scope = "person"

    @property
    def cache(self):
        return caches["throttle"]
