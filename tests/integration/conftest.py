"""One real redis-server and one real `celery worker` subprocess for the whole session, sharing
its test database and a media folder with the test process (tests/processes.py starts them;
tests/e2e and tests/api import these fixtures too). Both are stopped in teardown, whatever happens."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.processes import RedisServer, Worker, database_url_for_subprocesses, worker_env


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    try:
        yield server.start().url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def worker(redis_url, django_db_setup, django_db_blocker, tmp_path_factory, python_env) -> Worker:
    folder = tmp_path_factory.mktemp("worker")
    with django_db_blocker.unblock():
        database_url = database_url_for_subprocesses()
    env = worker_env(python_env, database_url=database_url, broker_url=redis_url, media_root=folder / "media",
                     var_dir=folder)
    running = Worker("integration@%h", env, folder / "worker.log", folder / "media")
    try:
        yield running.wait_ready()
    finally:
        running.stop()


@pytest.fixture
def broker(redis_url, send_to):
    """This process sends its messages to the session's redis-server (the test settings say memory://)."""
    return send_to(redis_url)


@pytest.fixture
def shared_media(worker, settings) -> Path:
    """The test process stores uploads where the worker reads them."""
    settings.MEDIA_ROOT = str(worker.media_root)
    return worker.media_root
