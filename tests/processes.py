"""Real processes for the tests: private redis-servers and `celery -A webapp worker` subprocesses.

Registered for the whole suite (tests/conftest.py: `pytest_plugins = ["tests.processes"]`):

    redis_url, worker, broker, shared_media           the session's one redis-server and one real worker
                                                      (`integration@<host>`), sharing this session's
                                                      database and a media folder with the test process
    redis_factory(appendonly=False) -> RedisServer   a started redis-server on a free port and its own
                                                      folder (appendonly: appendfsync always); .url
                                                      .client() .stop() .kill() .start() .restart() .log()
    redis                                             one of them, that this process publishes to
    worker_factory(name, broker_url, ready=True, **env) -> Worker
                                                      a real worker `name@<host>` sharing this test's
                                                      database and media folder, env overriding
                                                      worker_env()'s; .node .wait_ready() .kill()
                                                      .kill_child() .terminate() .start() .pool_pids()
                                                      .alive() .log() .tail()
    send_to(url)                                      this process publishes its messages to `url`
    worker_media                                      the media folder the test and its workers share

and plain helpers: wait_until(), wait_for_job(job, done, *workers), finished, result_files(), broker_holds().

Everything a factory started is stopped in teardown, whatever happened; a test that uses
worker_factory gets a transactional database (a worker sees only what this process commits).
The classes and `worker_env()` also serve session-scoped fixtures (tests/integration).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable

import pytest

from scripts.processes import (ProcessError, child_pids, free_port, kill_group, redis_binary, redis_command,
                               stop_groups, wait_for_redis, worker_command)

REPO_ROOT = Path(__file__).resolve().parents[1]
READY_TIMEOUT = 90  # s; a worker imports torch and Django before it says "ready"
STOP_GRACE = 10  # s; a warm shutdown waits for the running job this long, then SIGKILL


def wait_until(condition: Callable[[], object], timeout: float, what: Callable[[], str] | str,
               every: float = 0.1):
    """condition()'s first truthy value; fails the test with `what` (a message, or a function
    that makes one, e.g. with a worker's log tail) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"after {timeout} s: {what() if callable(what) else what}")
        time.sleep(every)


def _stop(process: subprocess.Popen | None, grace: float) -> None:
    """SIGTERM, then after `grace` seconds SIGKILL to what is left of its group (children too)."""
    if process is not None:
        stop_groups([[process]], grace)


# -- redis ---------------------------------------------------------------------------------------

class RedisServer:
    """A redis-server on one port and one data folder; stopping and starting it again keeps both,
    so a restart with appendonly=True finds the same data (appendfsync always: every
    acknowledged write is on disk before the reply)."""

    def __init__(self, folder: Path, appendonly: bool = False, port: int | None = None):
        try:
            self.binary = redis_binary()
        except ProcessError as error:
            pytest.skip(f"these tests need a redis-server: {error}")
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.appendonly = appendonly
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log_path = folder / "redis.log"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 15) -> RedisServer:
        if self.alive():
            return self
        command = redis_command(self.port, self.folder, appendonly=self.appendonly, fsync="always",
                                binary=self.binary)
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for_redis(self.url, self.alive, timeout)
        except ProcessError as error:
            pytest.fail(f"{error}:\n{self.log()}")
        return self

    def client(self):
        import redis

        return redis.Redis.from_url(self.url, socket_timeout=5, socket_connect_timeout=5)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """A clean shutdown (SIGTERM: redis finishes writing its AOF)."""
        _stop(self.process, grace=5)

    def kill(self) -> None:
        """SIGKILL: a crash, nothing flushed that was not already."""
        if self.process is not None:
            kill_group(self.process)

    def restart(self) -> RedisServer:
        self.kill()
        return self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


# -- celery workers -----------------------------------------------------------------------------

def database_url_for_subprocesses() -> str:
    """This session's test database (after pytest-django created it), as a DATABASE_URL.
    Call it with the database unblocked (django_db_blocker.unblock())."""
    from django.db import connection

    s = connection.settings_dict
    if s["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{s['NAME']}"
    if s["ENGINE"] == "django.db.backends.postgresql":
        return f"postgres://{s['USER']}:{s['PASSWORD']}@{s['HOST'] or 'localhost'}:{s['PORT'] or 5432}/{s['NAME']}"
    pytest.skip(f"no DATABASE_URL for {s['ENGINE']}")


def worker_env(base: dict[str, str], *, database_url: str, broker_url: str, media_root: Path, var_dir: Path,
               **overrides: str) -> dict[str, str]:
    """The environment of a test's worker: this session's database, the given broker and media folder."""
    env = {**base, "DATABASE_URL": database_url, "MEDIA_ROOT": str(media_root), "VAR_DIR": str(var_dir),
           "CELERY_BROKER_URL": broker_url, "LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1",
           # The same Redis carries the jobs' live updates (webapp/jobs/live.py), as in production.
           **({"REDIS_URL": broker_url} if broker_url.startswith("redis") else {}),
           # The test process and its workers share this folder (one machine); tests/multimachine
           # gives each its own and a bucket instead.
           "MEDIA_SHARED": "1",
           # Short intervals, so a run of a few seconds shows several reports and checkpoints.
           "PROGRESS_EVERY_SECONDS": "0.1", "PREVIEW_EVERY_SECONDS": "0.5", "CHECKPOINT_EVERY_SECONDS": "0.5",
           # One compute thread: on a small machine, two OpenMP threads spin against the test
           # process (and anything else running) and make each iteration several times slower.
           "OMP_NUM_THREADS": "1"}
    env.update({key: str(value) for key, value in overrides.items()})
    return env


class Worker:
    """`celery -A webapp worker -Q gpu -c 1 --pool prefork -n <node>` in a process group of its own."""

    def __init__(self, node: str, env: dict[str, str], log_path: Path, media_root: Path):
        self.node = node.replace("%h", socket.gethostname())  # what jobs record as worker_host
        self.env = env
        self.log_path = log_path
        self.media_root = media_root
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> Worker:
        """Start it (again, after kill() or a shutdown: the log goes on in the same file)."""
        self._log_start = len(self.log())
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen(worker_command(self.node), cwd=REPO_ROOT, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> Worker:
        wait_until(lambda: self._check_alive() and " ready." in self.log()[self._log_start:], timeout,
                   lambda: f"worker {self.node} did not start:\n{self.tail()}", every=0.2)
        return self

    def _check_alive(self) -> bool:
        if not self.alive():
            pytest.fail(f"worker {self.node} exited with code {self.process.returncode}:\n{self.tail()}")
        return True

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def pool_pids(self) -> list[int]:
        """The prefork pool's processes (the ones that run the tasks)."""
        return child_pids(self.process.pid) if self.alive() else []

    def kill(self) -> None:
        """SIGKILL the main process and its pool at once (a machine lost, an OOM kill of it all)."""
        kill_group(self.process)

    def kill_child(self) -> list[int]:
        """SIGKILL the pool processes only (what the kernel's OOM killer does to a job); the main
        process stays and forks a new one. Returns the pids killed."""
        pids = self.pool_pids()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return pids

    def terminate(self) -> None:
        """SIGTERM: Celery's warm shutdown (finish the running task, take no more)."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)

    def stop(self, grace: float = STOP_GRACE) -> None:
        _stop(self.process, grace)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tail(self, lines: int = 60) -> str:
        return f"--- {self.node} log (last {lines} lines) ---\n" + "\n".join(self.log().splitlines()[-lines:])


# -- fixtures -----------------------------------------------------------------------------------

@pytest.fixture
def redis_factory(tmp_path_factory):
    """redis_factory(appendonly=False) -> a started RedisServer; all are killed in teardown."""
    started: list[RedisServer] = []

    def make(appendonly: bool = False) -> RedisServer:
        server = RedisServer(tmp_path_factory.mktemp("redis"), appendonly=appendonly)
        started.append(server)
        return server.start()

    yield make
    for server in started:
        server.kill()


@pytest.fixture
def redis(redis_factory, send_to) -> RedisServer:
    """A private redis-server (no persistence) that this process publishes to."""
    server = redis_factory()
    send_to(server.url)
    return server


@pytest.fixture
def worker_media(media_root) -> Path:
    """The media folder this test stores uploads in and its workers read from (and write results to)."""
    return media_root


@pytest.fixture
def worker_factory(transactional_db, django_db_blocker, worker_media, tmp_path_factory, python_env):
    """worker_factory(name, broker_url, ready=True, **env) -> a started Worker named `name@<host>`,
    with the test settings of worker_env() plus `env`; every one is stopped in teardown."""
    with django_db_blocker.unblock():
        database_url = database_url_for_subprocesses()
    started: list[Worker] = []

    def make(name: str, broker_url: str, ready: bool = True, **env: str) -> Worker:
        folder = tmp_path_factory.mktemp(f"worker-{name}")
        environment = worker_env(python_env, database_url=database_url, broker_url=broker_url,
                                 media_root=worker_media, var_dir=folder, **env)
        worker = Worker(f"{name}@%h", environment, folder / "worker.log", worker_media)
        started.append(worker)
        return worker.wait_ready() if ready else worker

    yield make
    for worker in started:
        worker.stop(grace=2)


def _drop_connections(app) -> None:
    """Forget the pooled connections (not close: kombu shares its pools by URL), so the next
    message goes through a pool for the broker now configured."""
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def send_to(monkeypatch):
    """send_to(url): this process sends its messages to (and webapp.queue.broker reads) that broker,
    until the test ends. The test settings say memory://; Celery reads CELERY_BROKER_URL from the
    environment before its configuration, and the transport options must be the Redis ones
    (the priority lanes decide which list a message goes to)."""
    from webapp.celery import app, broker_transport_options

    saved = app.conf.broker_transport_options

    def point(url: str) -> str:
        monkeypatch.setenv("CELERY_BROKER_URL", url)
        app.conf.broker_transport_options = broker_transport_options(url, 3600, Path("/unused"))
        _drop_connections(app)
        return url

    yield point
    app.conf.broker_transport_options = saved
    _drop_connections(app)


# -- one redis-server and one worker for the whole session ----------------------------------------
# (tests/integration, tests/e2e and the API's end-to-end test share them: one worker, one node name)

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


# -- jobs ---------------------------------------------------------------------------------------

JOB_TIMEOUT = 120  # s; the longest a tiny job may take to reach the state a test waits for


def describe(row, workers) -> str:
    return (f"job {row.pk} is {row.status} (attempt {row.attempts}, step {row.step}, error {row.error!r})\n"
            + "\n".join(worker.tail() for worker in workers))


def wait_for_job(job, done: Callable, *workers: Worker, timeout: float = JOB_TIMEOUT, every: float = 0.05,
                 seen: list | None = None):
    """Poll the job's row until done(row) and return it; `seen` collects every row read on the way.
    A timeout fails the test with the row and the workers' log tails."""
    from webapp.models import StyleJob

    deadline = time.monotonic() + timeout
    while True:
        row = StyleJob.objects.get(pk=job.pk)
        if seen is not None:
            seen.append(row)
        if done(row):
            return row
        if time.monotonic() > deadline:
            pytest.fail(f"after {timeout} s: {describe(row, workers)}")
        time.sleep(every)


def finished(row) -> bool:
    return row.is_finished


def running_at_step(step: int) -> Callable:
    return lambda row: row.status == "running" and row.step >= step


def result_files(media_root: Path, job) -> list[str]:
    """The result PNGs stored for a job (a second finished run would leave result_<random>.png)."""
    folder = media_root / "results" / str(job.pk)
    return sorted(path.name for path in folder.glob("result*.png")) if folder.is_dir() else []


def broker_holds() -> str | None:
    """What the broker this process publishes to holds, as a message for an assertion; None when
    it is empty: no message waiting in any lane, none delivered and unacknowledged."""
    from webapp.queue import broker

    state = broker.read(with_task_ids=True)
    if state.depth or state.unacked:
        return f"{state.depth} waiting, {state.unacked} unacknowledged: {sorted(state.task_ids)}"
    return None
