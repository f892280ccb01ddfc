"""A real redis-server and a real `celery worker` subprocess, sharing this session's test database
and a media folder with the test process. Both are stopped in teardown, whatever happens."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

READY_TIMEOUT = 90  # s; the worker imports torch and Django before it says "ready"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(process: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM (a warm shutdown), then SIGKILL to the process group this fixture started."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # its children too (the worker's pool)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait(10)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed; the integration tests need it (apt-get install redis-server)")
    import redis

    folder = tmp_path_factory.mktemp("redis")
    port = free_port()
    with open(folder / "redis.log", "w") as log:
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(folder)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 15
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"redis-server did not start: {(folder / 'redis.log').read_text()}")
                time.sleep(0.05)
        yield url
    finally:
        stop(process, grace=5)


def database_url_for_subprocesses() -> str:
    """This session's test database (after pytest-django created it), as a DATABASE_URL."""
    from django.db import connection

    s = connection.settings_dict
    if s["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{s['NAME']}"
    if s["ENGINE"] == "django.db.backends.postgresql":
        return f"postgres://{s['USER']}:{s['PASSWORD']}@{s['HOST'] or 'localhost'}:{s['PORT'] or 5432}/{s['NAME']}"
    pytest.skip(f"no DATABASE_URL for {s['ENGINE']}")


@dataclass
class Worker:
    process: subprocess.Popen
    log_path: Path
    media_root: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log().splitlines()[-lines:])


@pytest.fixture(scope="session")
def worker(redis_url, django_db_setup, django_db_blocker, tmp_path_factory, repo_root, python_env) -> Worker:
    folder = tmp_path_factory.mktemp("worker")
    media_root = folder / "media"
    with django_db_blocker.unblock():
        database_url = database_url_for_subprocesses()
    env = {**python_env, "DATABASE_URL": database_url, "MEDIA_ROOT": str(media_root), "VAR_DIR": str(folder),
           "CELERY_BROKER_URL": redis_url, "LOG_LEVEL": "INFO",
           # Short intervals, so a run of a few seconds shows several reports and checkpoints.
           "PROGRESS_EVERY_SECONDS": "0.1", "PREVIEW_EVERY_SECONDS": "0.5", "CHECKPOINT_EVERY_SECONDS": "0.5",
           # One compute thread: on a small machine, two OpenMP threads spin against the test
           # process (and anything else running) and make each iteration several times slower.
           "OMP_NUM_THREADS": "1"}
    log_path = folder / "worker.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "webapp", "worker", "-Q", "gpu", "-c", "1", "--pool", "prefork",
             "-n", "integration@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=repo_root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    running = Worker(process, log_path, media_root)
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while " ready." not in running.log():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the celery worker did not start:\n{running.tail()}")
            time.sleep(0.2)
        yield running
    finally:
        stop(process)


@pytest.fixture
def broker(redis_url, monkeypatch):
    """This process sends its messages to the test's redis-server (the test settings say memory://).
    Celery reads CELERY_BROKER_URL from the environment before its configuration."""
    from webapp.celery import app, broker_transport_options

    monkeypatch.setenv("CELERY_BROKER_URL", redis_url)
    saved = app.conf.broker_transport_options
    app.conf.broker_transport_options = broker_transport_options(redis_url, 3600, Path("/unused"))
    _drop_connections(app)
    yield redis_url
    app.conf.broker_transport_options = saved
    _drop_connections(app)


def _drop_connections(app) -> None:
    """Forget the pooled connections (not close: kombu shares its pools by URL), so the next
    message goes through a pool for the broker now configured."""
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def shared_media(worker, settings) -> Path:
    """The test process stores uploads where the worker reads them."""
    settings.MEDIA_ROOT = str(worker.media_root)
    return worker.media_root
