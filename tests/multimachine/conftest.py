"""Several machines on one host, sharing only what separate machines would share: one PostgreSQL
database, one Redis, one S3 bucket (a real S3 HTTP server: moto's, in its own process). The web
(this test process, through Django's test client) and every worker and reconciler have a
MEDIA_ROOT and a VAR_DIR that no other process sees, and none of them may write a job's file there.

    s3_server (session)     moto's S3 server on a free port
    link                    the bucket's address as every process knows it: a relay the test can cut
    bucket                  a fresh bucket for this test, the web's storage pointed at it (through
                            the link); .keys(prefix) .get(key) .grants(key) look straight at the server
    machine(name, **env)    a started worker `name@<host>` with its own folders and the bucket's
                            settings (env overrides); .media_root
    reconciler(**env)       `manage.py reconcile_jobs --every 1`, its own folders
    redis                   (tests/processes.py) a private redis-server this process sends to

These tests need PostgreSQL (DATABASE_URL=postgres://…; `make test` runs them so): they are
skipped on SQLite, which separate machines could not share.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from scripts.processes import stop_groups
from tests.multimachine.machines import ACCESS_KEY, REGION, SECRET_KEY, Bucket, Link, S3Server, storage_env
from tests.processes import REPO_ROOT, Worker, database_url_for_subprocesses, worker_env


@pytest.fixture(autouse=True)
def postgresql_only(django_db_blocker):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("the multi-machine tests share one PostgreSQL database: run them with "
                    "DATABASE_URL=postgres://… (make test does)")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    server = S3Server(tmp_path_factory.mktemp("s3")).start()
    yield server
    server.stop()


@pytest.fixture
def link(s3_server):
    relay = Link(s3_server.port).start()
    yield relay
    relay.cut()


@pytest.fixture
def bucket(s3_server, link, settings) -> Bucket:
    """A new bucket, and the web's files in it (through the link), under a prefix as S3_PREFIX
    would put them."""
    from botocore.config import Config

    found = Bucket(s3_server.url, f"test-{uuid.uuid4().hex[:12]}").create()
    found.prefix = "service"
    found.env = storage_env(link.url, found.name, found.prefix)
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "webapp.jobs.bucket.BucketStorage", "OPTIONS": {
        "bucket_name": found.name, "endpoint_url": link.url, "region_name": REGION, "access_key": ACCESS_KEY,
        "secret_key": SECRET_KEY, "location": found.prefix, "default_acl": None, "file_overwrite": False,
        "client_config": Config(s3={"addressing_style": "path"}, signature_version="s3v4",
                                request_checksum_calculation="when_required",
                                response_checksum_validation="when_required", connect_timeout=2, read_timeout=10,
                                retries={"mode": "standard", "max_attempts": 2})}}}
    return found


@pytest.fixture
def subprocess_database(transactional_db, django_db_blocker) -> str:
    with django_db_blocker.unblock():
        return database_url_for_subprocesses()


@pytest.fixture
def machine(subprocess_database, redis, bucket, tmp_path_factory, python_env):
    """machine(name, ready=True, **env) -> a started worker on a "machine" of its own."""
    started: list[Worker] = []

    def make(name: str, ready: bool = True, **env: str) -> Worker:
        folder = tmp_path_factory.mktemp(f"machine-{name}")
        environment = worker_env(python_env, database_url=subprocess_database, broker_url=redis.url,
                                 media_root=folder / "media", var_dir=folder / "var",
                                 **{"MEDIA_SHARED": "0", **bucket.env, **env})
        worker = Worker(f"{name}@%h", environment, folder / "worker.log", folder / "media")
        started.append(worker)
        return worker.wait_ready() if ready else worker

    yield make
    for worker in started:
        worker.stop(grace=2)


class Reconciler:
    def __init__(self, env: dict[str, str], folder: Path):
        self.log_path = folder / "reconciler.log"
        self.media_root = folder / "media"
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen([sys.executable, "manage.py", "reconcile_jobs", "--every", "1"],
                                            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        stop_groups([[self.process]], 5)


@pytest.fixture
def reconciler(subprocess_database, redis, bucket, tmp_path_factory, python_env):
    """reconciler(**env) -> `manage.py reconcile_jobs --every 1` on a machine of its own."""
    started: list[Reconciler] = []

    def make(**env: str) -> Reconciler:
        folder = tmp_path_factory.mktemp("reconciler")
        environment = worker_env(python_env, database_url=subprocess_database, broker_url=redis.url,
                                 media_root=folder / "media", var_dir=folder / "var",
                                 **{"MEDIA_SHARED": "0", "REDIS_URL": redis.url, **bucket.env, **env})
        started.append(Reconciler(environment, folder))
        return started[-1]

    yield make
    for process in started:
        process.stop()
