"""The Content-Security-Policy header on every response (Django 5.2 has none of its own).

CONTENT_SECURITY_POLICY (settings) is `default-src 'self'` and a few tightenings: every script,
style, font and request comes from this site (static/ holds every asset, no CDN); images may
also be `blob:` (the new-job page previews the files a person picks, the job page its
preview) and `data:` (Swagger UI's icons); no plugins, no framing, forms post only here. So
an injected `<script>` or inline handler does not run. Swagger UI's own script is served as a
file for the same reason (api/urls.py uses drf-spectacular's split view).
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from .middleware import BothModes

HEADER = "Content-Security-Policy"


class ContentSecurityPolicyMiddleware(BothModes):
    def finish(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if settings.CONTENT_SECURITY_POLICY and HEADER not in response:
            response[HEADER] = settings.CONTENT_SECURITY_POLICY
        return response
