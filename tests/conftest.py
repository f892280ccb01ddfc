"""Repo-wide test helpers: where the checkout is, and how to start Python on it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Real redis-servers and celery workers for any test that needs them (redis_factory, worker_factory, send_to).
pytest_plugins = ["tests.processes"]

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def python_env() -> dict[str, str]:
    """Environment for a `python ...` subprocess that imports this checkout's packages (copy it to change it)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    return env


# -- the web service's tests (tests/webapp, tests/integration) ---------------------------

SHARED_IMAGES = REPO_ROOT.parent / "shared" / "images"


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix, tmp_path_factory) -> None:
    """Keep a SQLite test database in a file, not in memory: the integration tests' worker
    subprocesses open the same database. (A PostgreSQL DATABASE_URL is used as it is.)"""
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3":
        database.setdefault("TEST", {})["NAME"] = str(tmp_path_factory.mktemp("database") / "test.sqlite3")


@pytest.fixture(scope="session")
def sample_photo():
    """sample_photo(kind, name, long_side=48, format="PNG") -> the bytes of a real sample photo
    from ../shared/images, scaled down (kind: "content" or "style")."""
    import io

    from stylize import images

    def make(kind: str, name: str, long_side: int = 48, format: str = "PNG") -> bytes:
        path = SHARED_IMAGES / kind / name
        if not path.is_file():
            pytest.fail(f"sample photo {path} is missing; the tests need the shared images folder")
        img = images.load_image(path)
        img = images.resize(img, images.fit_long_side(*img.size, long_side))
        out = io.BytesIO()
        img.save(out, format=format)
        return out.getvalue()

    return make


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path) -> Path:
    """Every test stores its files in a folder of its own (the storage API reads MEDIA_ROOT)."""
    root = tmp_path / "media"
    root.mkdir()
    settings.MEDIA_ROOT = str(root)
    return root


# -- the web service's people and broker, shared by tests/webapp and tests/api ------------


@pytest.fixture
def make_user(django_user_model):
    counter = iter(range(1, 10_000))

    def make(username: str | None = None):
        # No password: hashing one takes most of a second, and these people never log in.
        return django_user_model.objects.create_user(username or f"person{next(counter)}")

    return make


@pytest.fixture
def user(make_user):
    return make_user("ada")


@pytest.fixture
def other(make_user):
    return make_user("bob")


@pytest.fixture
def sent(monkeypatch) -> list[dict]:
    """The messages jobs would send to the broker (send_task's keyword arguments), kept here
    instead of being published."""
    from webapp.celery import app
    from webapp.queue.lanes import TASK_NAME

    calls: list[dict] = []

    def keep(name, **kwargs):
        assert name == TASK_NAME
        calls.append(kwargs)

    monkeypatch.setattr(app, "send_task", keep)
    return calls


# -- images and jobs of those people --------------------------------------------------------

@pytest.fixture
def upload(sample_photo):
    """upload(owner, picture="content", name=None, long_side=48, format="PNG", client_name=None) -> a
    StyleImage stored as the pages and the API store uploads.

    `picture` "content" or "style": a sample photo from ../shared/images (`name`, by default
    chelsea.png or starry_night.jpg) scaled to `long_side`; an RGB colour instead: a flat 48 px
    PNG, cheap, and a different image for each colour (`name` is then the client's file name)."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from webapp.jobs import storage

    def store(owner, picture="content", name: str | None = None, long_side: int = 48, format: str = "PNG",
              client_name: str | None = None):
        if isinstance(picture, str):
            name = name or {"content": "chelsea.png", "style": "starry_night.jpg"}[picture]
            data = sample_photo(picture, name, long_side, format)
        else:
            data, name = flat_png(picture), name or "photo.png"
        return storage.store_upload(owner, SimpleUploadedFile(client_name or name, data))

    return store


def flat_png(colour, size: int = 48) -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (size, size), tuple(colour)).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def content(user, upload):
    return upload(user, "content", "chelsea.png")


@pytest.fixture
def style(user, upload):
    return upload(user, "style", "starry_night.jpg")


@pytest.fixture
def second_style(user, upload):
    return upload(user, "style", "the_scream.jpg")


@pytest.fixture
def person(django_user_model):
    """Grace: the owner of the jobs that real workers run in the integration and fault tests."""
    return django_user_model.objects.create_user("grace")  # no password: hashing one is slow


@pytest.fixture
def images(person, upload):
    """Grace's content photo and style painting (the style as a JPEG, as most paintings arrive)."""
    return upload(person, "content", "chelsea.png"), upload(person, "style", "starry_night.jpg", format="JPEG")


# A run of a few iterations at 48 px: the real engine, in about a second on a CPU.
TINY_PARAMS = {"size": 48, "scales": 1, "iterations": 4, "seed": 7}


@pytest.fixture
def tiny_params() -> dict:
    return dict(TINY_PARAMS)


@pytest.fixture
def make_job(user, content, style, tiny_params, sent, django_capture_on_commit_callbacks):
    """make_job() → a queued job of `user`; make_job(other, content=…, styles=[…], priority=…) →
    someone else's, or another kind (its message is kept in `sent`)."""
    from webapp.jobs import lifecycle

    def make(owner=None, content=content, styles=(style,), **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return lifecycle.create_job(owner or user, content, styles, tiny_params, **kwargs)

    return make


@pytest.fixture
def queued_job(make_job):
    return make_job()

