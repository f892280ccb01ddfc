"""Requests too large to read: a 413 with a message, before anything reads the body.

Django reads a body when a view (or CsrfViewMiddleware) first asks for request.POST, FILES
or body. It refuses form fields or a body past DATA_UPLOAD_MAX_MEMORY_SIZE with a bare 400,
spools any amount of file data to disk first, and DRF's JSON parser reads a body of any size.
RequestSizeLimitMiddleware looks at Content-Length before all of that:

    login and sign-up   AUTH_FORM_MAX_BYTES, whatever the content type (the pages' and the
                        admin's: they take a few short fields and no file)
    multipart (files)   (1 + JOB_MAX_STYLES) files of UPLOAD_MAX_BYTES, plus
                        DATA_UPLOAD_MAX_MEMORY_SIZE of form fields
    anything else       DATA_UPLOAD_MAX_MEMORY_SIZE

bad_request (the 400 handler, webapp/urls.py) answers Django's own refusals the same way:
413 for form fields over DATA_UPLOAD_MAX_MEMORY_SIZE in a body that passed here, a 400 that
says what is wrong for too many fields or files. The API gets JSON ({"detail": ...}), the
pages an HTML page.
"""

from __future__ import annotations

import logging

from asgiref.sync import sync_to_async

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views import defaults

from .middleware import BothModes

log = logging.getLogger(__name__)

API_PREFIX = "/api/"  # webapp/urls.py


def _mb(size: int) -> str:
    return f"{size / 1e6:.3g}"  # as storage.UploadTooLarge says it


AUTH_FORMS = ("pages:login", "pages:signup", "admin:login")


def _auth_form_paths() -> set[str]:
    return {reverse(name) for name in AUTH_FORMS}


def body_limit(path: str, content_type: str) -> int | None:
    """The most bytes a request's body to `path` of this type (without its parameters) may have
    (None: no limit)."""
    if path in _auth_form_paths():
        return settings.AUTH_FORM_MAX_BYTES
    fields = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if content_type == "multipart/form-data":
        return (1 + settings.JOB_MAX_STYLES) * settings.UPLOAD_MAX_BYTES + (fields or 0)
    return fields


def _content_length(request: HttpRequest) -> int:
    try:
        return max(0, int(request.META.get("CONTENT_LENGTH") or 0))
    except ValueError:
        return 0  # Django reads nothing of a body whose length it cannot parse


def refuse(request: HttpRequest, status: int, title: str, message: str) -> HttpResponse:
    if request.path_info.startswith(API_PREFIX):
        return JsonResponse({"detail": message}, status=status)
    return render(request, "request_refused.html", {"title": title, "message": message}, status=status)


class RequestSizeLimitMiddleware(BothModes):
    """413 for a body over body_limit(), read from Content-Length alone. It must run before
    CsrfViewMiddleware's process_view, which reads request.POST: any place in MIDDLEWARE does,
    as every middleware's __call__ runs before the first process_view. Under ASGI the server has
    read the body before any middleware runs, unless webapp/asgi.py's SkipOversizedBodies held it
    back (it does, by the same limit). Sync and async: an async view's chain stays async."""

    def __call__(self, request: HttpRequest):
        if self.is_async:
            return self._async_call(request)
        message = too_large(request)
        return refuse(request, 413, "Too large", message) if message else self.get_response(request)

    async def _async_call(self, request: HttpRequest) -> HttpResponse:
        message = too_large(request)
        if message:  # the page is rendered with the person's details: in a thread, as Django's views are
            return await sync_to_async(refuse)(request, 413, "Too large", message)
        return await self.get_response(request)


def too_large(request: HttpRequest) -> str | None:
    """Why the request's body is refused (its Content-Length is over body_limit()), or None."""
    limit, length = body_limit(request.path_info, request.content_type), _content_length(request)
    if limit is None or length <= limit:
        return None
    log.warning("refused a %s body of %d bytes to %s (limit %d)", request.content_type, length, request.path, limit)
    if request.path_info in _auth_form_paths():
        return f"The request is too large ({_mb(length)} MB) for a login or sign-up form."
    if request.content_type == "multipart/form-data":
        return (f"The request is too large ({_mb(length)} MB): upload at most {_mb(settings.UPLOAD_MAX_BYTES)} "
                f"MB per image, {1 + settings.JOB_MAX_STYLES} images at once.")
    return f"The request is too large ({_mb(length)} MB): at most {_mb(limit)} MB of data."


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler400: Django's refusals of a body it has begun to read, said plainly."""
    if isinstance(exception, RequestDataTooBig):
        return refuse(request, 413, "Too large", f"The request is too large: its form fields may have at most "
                                                 f"{_mb(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)} MB.")
    if isinstance(exception, TooManyFieldsSent):
        return refuse(request, 400, "Bad request", f"The request has too many fields (at most "
                                                   f"{settings.DATA_UPLOAD_MAX_NUMBER_FIELDS}).")
    if isinstance(exception, TooManyFilesSent):
        return refuse(request, 400, "Bad request", f"The request has too many files (at most "
                                                   f"{settings.DATA_UPLOAD_MAX_NUMBER_FILES}).")
    return defaults.bad_request(request, exception)
