"""Fixtures of the REST API tests: API clients sending a person's token, fresh throttle counts,
small PNG bytes (people, images and jobs come from tests/conftest.py)."""

from __future__ import annotations

import pytest
from django.core.cache import caches
from knox.models import AuthToken
from rest_framework.test import APIClient

from tests.conftest import flat_png


@pytest.fixture(autouse=True)
def fresh_throttle():
    """Every test starts with no request counted (a test may point the cache elsewhere, so
    nothing is cleared after it)."""
    caches["throttle"].clear()


def client_for(person) -> APIClient:
    client = APIClient()
    _, token = AuthToken.objects.create(person, expiry=None)  # as tokens.issue() makes them, without its cap
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


@pytest.fixture
def token_client():
    """token_client(person) -> an APIClient sending that person's token."""
    return client_for


@pytest.fixture
def api(user) -> APIClient:
    return client_for(user)


@pytest.fixture
def other_api(other) -> APIClient:
    return client_for(other)


@pytest.fixture
def png():
    """png(colour, size=48) -> bytes of a small PNG (different colours, different images)."""
    return lambda colour=(200, 40, 40), size=48: flat_png(colour, size)


@pytest.fixture
def connection_kept():
    """For requests through the real WSGI application (not the test client): as the test client
    does, keep the test's database connection (and its transaction) open across each request."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)
