"""Failed logins, counted per username and per client address; past a limit a login is
refused before its password is checked, so guessing stops even at the right guess.

    LOGIN_FAILURES_PER_USERNAME (5)   failures of one username, from anywhere: past it the
                                      username is locked for every address that has failed a
                                      login in the window, not for the others
    LOGIN_FAILURES_PER_IP (20)        failures from one address, of any usernames: past it the
                                      address is refused whatever it asks
    LOGIN_FAILURE_WINDOW_SECONDS (900) counted from the first failure

So a guesser cannot lock the admin (or anyone) out: the owner, logging in from an address
that has not failed, is let in with the right password, and every address that guesses
gets one wrong try at a locked username at most. The client's address is REMOTE_ADDR, or
the X-Forwarded-For entry added by a proxy in TRUSTED_PROXY_ADDRESSES (client_ip()).
Sign-ups are counted per address the same way (SIGNUPS_PER_IP in SIGNUP_WINDOW_SECONDS).

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
import ipaddress
import logging
from functools import lru_cache

from django.conf import settings
from django.contrib.auth.backends import BaseBackend, ModelBackend
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core.cache import caches
from django.core.exceptions import PermissionDenied
from django.dispatch import receiver

log = logging.getLogger(__name__)

TOO_MANY = "Too many failed attempts to log in. Please wait a few minutes and try again."


TOO_MANY_SIGNUPS = "Too many accounts were created from your address. Please try again later."


@lru_cache(maxsize=8)
def _networks(addresses: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(a, strict=False) for a in addresses)


def _trusted(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in _networks(tuple(settings.TRUSTED_PROXY_ADDRESSES)))


def client_ip(request) -> str | None:
    """The address the request came from: REMOTE_ADDR, unless that is one of the proxies in
    TRUSTED_PROXY_ADDRESSES; then the X-Forwarded-For entries are read from the right (each
    proxy appends the address it saw), past the trusted ones, and the first other is the
    client. A client that connects directly cannot choose its address by sending the header."""
    if request is None:
        return None
    address = request.META.get("REMOTE_ADDR") or None
    if address is None or not _trusted(address):
        return address
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    for entry in reversed(forwarded):
        if entry and not _trusted(entry):
            return entry[:64]
    return address


def _user_key(username: str) -> str:
    """Usernames are hashed: a key must be short and plain whatever a person types, and counts
    'Ada' and 'ada' together."""
    return f"login-failures:user:{hashlib.sha256(username.casefold().encode()).hexdigest()[:32]}"


def _ip_key(address: str) -> str:
    return f"login-failures:ip:{address[:64]}"


def _counters(request, username: str | None) -> list[str]:
    """The cache keys of the counts this attempt belongs to."""
    address = client_ip(request)
    return ([_user_key(username)] if username else []) + ([_ip_key(address)] if address else [])


def is_refused(request, username: str | None) -> bool:
    """Whether this address has used up its failures, or this username its own and this
    address has failed in the window (or is unknown)."""
    address = client_ip(request)
    keys = _counters(request, username)
    try:
        counts = caches["throttle"].get_many(keys)
    except Exception:
        log.warning("login limit not checked: the throttle cache cannot be read", exc_info=True)
        return False
    from_address = counts.get(_ip_key(address), 0) if address else None
    if from_address is not None and from_address >= settings.LOGIN_FAILURES_PER_IP:
        return True
    username_locked = bool(username) and counts.get(_user_key(username), 0) >= settings.LOGIN_FAILURES_PER_USERNAME
    return username_locked and (from_address is None or from_address > 0)


def record_failure(request, username: str | None) -> None:
    cache = caches["throttle"]
    try:
        for key in _counters(request, username):
            _count(cache, key, settings.LOGIN_FAILURE_WINDOW_SECONDS)
    except Exception:
        log.warning("failed login not counted: the throttle cache cannot be written", exc_info=True)


def _count(cache, key: str, window: int) -> None:
    cache.add(key, 0, timeout=window)  # starts the window
    cache.incr(key)  # keeps the expiry add() set, in Redis and locmem alike


def clear(username: str) -> None:
    try:
        caches["throttle"].delete_many(_counters(None, username))
    except Exception:
        log.warning("failed logins of a successful login not cleared: the throttle cache cannot be "
                    "written", exc_info=True)


def _signup_key(request) -> str | None:
    address = client_ip(request)
    return f"signups:ip:{address}" if address else None


def signup_refused(request) -> bool:
    """Whether this address has made SIGNUPS_PER_IP accounts in the window (fails open, as logins do)."""
    key = _signup_key(request)
    try:
        return key is not None and (caches["throttle"].get(key) or 0) >= settings.SIGNUPS_PER_IP
    except Exception:
        log.warning("sign-up limit not checked: the throttle cache cannot be read", exc_info=True)
        return False


def record_signup(request) -> None:
    key = _signup_key(request)
    try:
        if key is not None:
            _count(caches["throttle"], key, settings.SIGNUP_WINDOW_SECONDS)
    except Exception:
        log.warning("sign-up not counted: the throttle cache cannot be written", exc_info=True)


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
