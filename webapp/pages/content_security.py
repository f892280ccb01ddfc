"""The Content-Security-Policy header on every response (Django 5.2 has none of its own).

CONTENT_SECURITY_POLICY (settings) is `default-src 'self'` and a few tightenings: every script,
style, font and request comes from this site (static/ holds every asset, no CDN); images may
also be `blob:` (the new-job page previews the files a person picks, the job page its
preview) and `data:` (Swagger UI's icons); no plugins, no framing, forms post only here. So
an injected `<script>` or inline handler does not run. Swagger UI's own script is served as a
file for the same reason (api/urls.py uses drf-spectacular's split view).
"""

from __future__ import annotations

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponse

HEADER = "Content-Security-Policy"


class ContentSecurityPolicyMiddleware:
    """Sync and async: under ASGI an async view's chain stays async (no thread per request)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest):
        if iscoroutinefunction(self.get_response):
            return self._async_call(request)
        return with_policy(self.get_response(request))

    async def _async_call(self, request: HttpRequest) -> HttpResponse:
        return with_policy(await self.get_response(request))


def with_policy(response: HttpResponse) -> HttpResponse:
    if settings.CONTENT_SECURITY_POLICY and HEADER not in response:
        response[HEADER] = settings.CONTENT_SECURITY_POLICY
    return response
