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


@pytest.fixture
def media_root(settings, tmp_path) -> Path:
    """A folder of this test's own for stored files (the storage API reads MEDIA_ROOT)."""
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
