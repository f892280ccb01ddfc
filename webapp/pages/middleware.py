"""A base for the project's middleware: each runs in both modes, so that under ASGI an async view's
chain stays async (a synchronous middleware costs a thread hop per request, several times what
a cheap poll or an event stream itself costs)."""

from __future__ import annotations

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse


class BothModes:
    """Calls the rest of the chain and passes its response through finish()."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest):
        if self.is_async:
            return self._async_call(request)
        return self.finish(request, self.get_response(request))

    async def _async_call(self, request: HttpRequest) -> HttpResponse:
        return self.finish(request, await self.get_response(request))

    def finish(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        return response
