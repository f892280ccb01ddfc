"""Fixtures of the web service's unit tests: a private media folder, people, their images."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile


@pytest.fixture(autouse=True)
def private_media(media_root) -> Path:
    """Every test stores its files in its own folder."""
    return media_root




@pytest.fixture
def upload(sample_photo):
    """upload(owner, kind, name, long_side=48, format="PNG", client_name=None) -> StyleImage."""
    from webapp.jobs import storage

    def store(owner, kind: str = "content", name: str = "chelsea.png", long_side: int = 48, format: str = "PNG",
              client_name: str | None = None):
        data = sample_photo(kind, name, long_side, format)
        return storage.store_upload(owner, SimpleUploadedFile(client_name or name, data))

    return store


@pytest.fixture
def content(user, upload):
    return upload(user, "content", "chelsea.png")


@pytest.fixture
def style(user, upload):
    return upload(user, "style", "starry_night.jpg")


@pytest.fixture
def second_style(user, upload):
    return upload(user, "style", "the_scream.jpg")


TINY_PARAMS = {"size": 48, "scales": 1, "iterations": 4, "seed": 7}


@pytest.fixture
def tiny_params() -> dict:
    """A run of a few iterations at 48 px: the real engine, in about a second on a CPU."""
    return dict(TINY_PARAMS)



@pytest.fixture
def queued_job(user, content, style, tiny_params, sent, django_capture_on_commit_callbacks):
    from webapp.jobs import lifecycle

    with django_capture_on_commit_callbacks(execute=True):
        return lifecycle.create_job(user, content, [style], tiny_params)
