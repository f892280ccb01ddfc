"""Failed logins, counted per username and per client address; past either limit a login is
refused before its password is checked, so guessing stops even at the right guess.

    LOGIN_FAILURES_PER_USERNAME (5)   failures of one username, from anywhere
    LOGIN_FAILURES_PER_IP (20)        failures from one address, of any usernames
    LOGIN_FAILURE_WINDOW_SECONDS (900) counted from the first failure

The counts live in the "throttle" cache: Redis when REDIS_URL is set, so every web process
shares them. A successful login clears its username's count, not its address's (one person
logging in at an office must not reopen guessing from there). If the cache cannot be reached
the limit is skipped and a warning logged: a Redis outage must not lock everybody out.

LoginLimitBackend comes first in AUTHENTICATION_BACKENDS: authenticate() itself refuses, so
the pages' login and the admin's share the limit. The failures are counted by the receivers
of user_login_failed below, connected when authenticate() first imports this module, before
it can send that signal. The login page shows the refusal as a 429 (views.accounts).
"""

from __future__ import annotations

import hashlib
import logging

from django.conf import settings
from django.contrib.auth.backends import BaseBackend, ModelBackend
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core.cache import caches
from django.core.exceptions import PermissionDenied
from django.dispatch import receiver

log = logging.getLogger(__name__)

TOO_MANY = "Too many failed attempts to log in. Please wait a few minutes and try again."


def client_ip(request) -> str | None:
    """The address the request came from. Behind the proxy that SECURE_PROXY_SSL_HEADER says is
    there, REMOTE_ADDR is the proxy's own, so the last X-Forwarded-For entry (the one the proxy
    added) is the client's; earlier entries are whatever the client sent."""
    if request is None:
        return None
    if getattr(settings, "SECURE_PROXY_SSL_HEADER", None):
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        if forwarded[-1]:
            return forwarded[-1]
    return request.META.get("REMOTE_ADDR") or None


def _counters(request, username: str | None) -> list[tuple[str, int]]:
    """(cache key, limit) of each count this attempt belongs to. Usernames are hashed: a key
    must be short and plain whatever a person types, and counts 'Ada' and 'ada' together."""
    counters = []
    if username:
        digest = hashlib.sha256(username.casefold().encode()).hexdigest()[:32]
        counters.append((f"login-failures:user:{digest}", settings.LOGIN_FAILURES_PER_USERNAME))
    address = client_ip(request)
    if address:
        counters.append((f"login-failures:ip:{address[:64]}", settings.LOGIN_FAILURES_PER_IP))
    return counters


def is_refused(request, username: str | None) -> bool:
    """Whether this username or address has used up its failures."""
    counters = _counters(request, username)
    try:
        counts = caches["throttle"].get_many([key for key, _ in counters])
    except Exception:
        log.warning("login limit not checked: the throttle cache cannot be read", exc_info=True)
        return False
    return any(counts.get(key, 0) >= limit for key, limit in counters)


def record_failure(request, username: str | None) -> None:
    cache = caches["throttle"]
    try:
        for key, _ in _counters(request, username):
            cache.add(key, 0, timeout=settings.LOGIN_FAILURE_WINDOW_SECONDS)  # starts the window
            cache.incr(key)  # keeps the expiry add() set, in Redis and locmem alike
    except Exception:
        log.warning("failed login not counted: the throttle cache cannot be written", exc_info=True)


def clear(username: str) -> None:
    try:
        caches["throttle"].delete_many([key for key, _ in _counters(None, username)])
    except Exception:
        log.warning("failed logins of a successful login not cleared: the throttle cache cannot be "
                    "written", exc_info=True)


class LoginLimitBackend(BaseBackend):
    """Lets nobody in by itself: it refuses (PermissionDenied, which makes authenticate() stop
    and fail) a username or address past its limit, and otherwise leaves the password to the
    next backend. get_user is ModelBackend's, for sessions started with force_login()."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is not None and is_refused(request, username):
            raise PermissionDenied(TOO_MANY)
        return None

    def get_user(self, user_id):
        return ModelBackend().get_user(user_id)


@receiver(user_login_failed, dispatch_uid="webapp.login_limit.count_failure")
def _count_failure(sender, credentials, request=None, **kwargs):
    record_failure(request, credentials.get("username"))


@receiver(user_logged_in, dispatch_uid="webapp.login_limit.clear_on_login")
def _clear_on_login(sender, request, user, **kwargs):
    clear(user.get_username())
