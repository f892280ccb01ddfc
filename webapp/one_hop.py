"""Django under ASGI with its middleware chain run in one thread hop per request.

Django's own ASGI handler builds the chain for async: each synchronous middleware method
(process_request, process_view, process_response of SessionMiddleware, CsrfViewMiddleware, ...)
then runs through sync_to_async, a thread hop of its own, and so does a synchronous view: about
fourteen hops for one page, each a hand-over of the GIL and a wake-up of a thread. Built for
sync instead, the chain and the view run in one call in the request's thread, as under WSGI; the
ASGI parts (reading the body, streaming the response, noticing a disconnect) stay Django's. An
async view (the API's state poll reached through Django) runs on the event loop as before:
async_to_sync from that thread hands it to the loop.

bench/asgi_handler.py measures the difference (CPU per request, the two handlers in one process).
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIHandler


class OneHopASGIHandler(ASGIHandler):
    def load_middleware(self, is_async: bool = False) -> None:
        # ASGIHandler.__init__ asks for the async chain; this handler always builds the sync one.
        super().load_middleware(is_async=False)

    async def get_response_async(self, request):
        return await sync_to_async(self.get_response, thread_sensitive=True)(request)
