"""The web application as production serves it: ASGI (gunicorn with uvicorn workers,
docker/gunicorn.conf.py), so that a job page's event stream or an API client's long poll holds a
connection, not a thread, and a slow client cannot tie up a worker process.

Around Django:
* ServeStatic (WhiteNoise's ASGI fork) answers /static/... from STATIC_ROOT (collectstatic: the
  Dockerfile and `make run` run it), compressed and cached, before a request reaches Django;
  uploads and results are not static files: Django's own views serve them to their owner.
* JobEvents (webapp/pages/views/live.py) and StatePolls (webapp/api/live.py): the job pages'
  event streams and the API's cheap polls, the two requests that come by the thousand, served
  without Django's middleware chain (each of its synchronous middleware costs a thread hop); any
  other request goes on to Django.
* OneHopASGIHandler (webapp/one_hop.py): Django's ASGI handler with the middleware chain run in
  one thread hop per request instead of one per middleware method.
* SkipOversizedBodies: Django's ASGI handler reads a whole body before any middleware runs, so a
  body whose Content-Length is over the limit (pages/request_limits.body_limit) is not read at all:
  Django gets an empty one, and RequestSizeLimitMiddleware answers 413 from the header as it does
  under WSGI.
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

import django  # noqa: E402 (after DJANGO_SETTINGS_MODULE is set)

django.setup(set_prefix=False)  # what get_asgi_application() does before making its handler

from django.conf import settings  # noqa: E402
from servestatic import ServeStaticASGI  # noqa: E402

from .one_hop import OneHopASGIHandler  # noqa: E402

django_application = OneHopASGIHandler()

from .api.live import StatePolls  # noqa: E402 (needs the apps loaded)
from .pages.request_limits import body_limit  # noqa: E402
from .pages.views.live import JobEvents  # noqa: E402


class SkipOversizedBodies:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and self._oversized(scope):
            async def no_body():
                return {"type": "http.request", "body": b"", "more_body": False}
            return await self.app(scope, no_body, send)
        return await self.app(scope, receive, send)

    @staticmethod
    def _oversized(scope) -> bool:
        headers = dict(scope.get("headers") or ())
        content_type = headers.get(b"content-type", b"").decode("latin-1").split(";")[0].strip().lower()
        try:
            length = int(headers.get(b"content-length", b"0"))
        except ValueError:
            return False
        limit = body_limit(scope.get("path", ""), content_type)
        return limit is not None and length > limit


application = ServeStaticASGI(JobEvents(StatePolls(SkipOversizedBodies(django_application))),
                              root=settings.STATIC_ROOT, prefix=settings.STATIC_URL)
