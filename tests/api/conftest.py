"""Fixtures of the REST API tests: private media, people with tokens, API clients, images."""

from __future__ import annotations

import io

import pytest
from django.core.cache import caches
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

TINY_PARAMS = {"size": 48, "scales": 1, "iterations": 3, "seed": 7}


@pytest.fixture(autouse=True)
def private_media(media_root):
    """Every test stores its files in its own folder."""
    return media_root


@pytest.fixture(autouse=True)
def fresh_throttle():
    caches["throttle"].clear()
    yield
    caches["throttle"].clear()






def client_for(person) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=person)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
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

    def make(colour=(200, 40, 40), size: int = 48) -> bytes:
        out = io.BytesIO()
        Image.new("RGB", (size, size), colour).save(out, format="PNG")
        return out.getvalue()

    return make


@pytest.fixture
def upload(png):
    """upload(owner, colour) -> a StyleImage stored through the same function as the API."""
    from webapp.jobs import storage

    def store(owner, colour=(200, 40, 40), name="photo.png"):
        return storage.store_upload(owner, SimpleUploadedFile(name, png(colour)))

    return store


@pytest.fixture
def content(user, upload):
    return upload(user, (200, 40, 40), "cat.png")


@pytest.fixture
def style(user, upload):
    return upload(user, (20, 40, 200), "waves.png")


@pytest.fixture
def tiny_params() -> dict:
    return dict(TINY_PARAMS)
