"""Who may read the API's schema and docs: a person logged in (session or token), or anyone
when API_DOCS_PUBLIC is on. Read at each request, so the setting needs no restart of the
URL configuration; the schema tells about every endpoint and option, which is no secret
but also nothing an anonymous scanner needs."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from rest_framework.permissions import BasePermission


class DocsReaders(BasePermission):
    """For /api/schema/ (scripts send a token; 401 without one)."""

    def has_permission(self, request, view) -> bool:
        return settings.API_DOCS_PUBLIC or bool(request.user and request.user.is_authenticated)


def login_unless_public(view):
    """For /api/docs/ (a page for browsers): to the login page, and back, unless public."""

    def wrapped(request, *args, **kwargs):
        if not settings.API_DOCS_PUBLIC and not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        return view(request, *args, **kwargs)

    return wrapped
