"""A worker refuses to start where it would do harm on several machines: with its files in a local
folder the web cannot see, or under the node name of a live worker (on another machine, or another
live process here). A worker restarted after a crash, its old process gone, starts as usual."""

from __future__ import annotations

import socket

import pytest
from django.utils import timezone

from tests.processes import Worker, worker_env
from webapp.models import WorkerHeartbeat

pytestmark = pytest.mark.django_db(transaction=True)

EXIT_TIMEOUT = 120  # s; it imports torch and Django before it checks


def refused(worker: Worker) -> str:
    """The worker's exit status must be 1; its log."""
    try:
        status = worker.process.wait(EXIT_TIMEOUT)
    except Exception:
        pytest.fail(f"the worker did not refuse to start:\n{worker.tail()}")
    assert status == 1, worker.tail()
    assert "refusing to start" in worker.log() and " ready." not in worker.log()
    return worker.log()


def test_a_worker_with_files_in_a_local_unshared_folder_refuses_to_start(
        subprocess_database, redis, tmp_path, python_env):
    env = worker_env(python_env, database_url=subprocess_database, broker_url=redis.url,
                     media_root=tmp_path / "media", var_dir=tmp_path / "var", MEDIA_SHARED="0")
    log = refused(Worker("lonely@%h", env, tmp_path / "worker.log", tmp_path / "media"))
    assert "MEDIA_ROOT" in log and "S3_BUCKET" in log and "MEDIA_SHARED=1" in log
    assert not WorkerHeartbeat.objects.filter(name__startswith="lonely@").exists()  # it never said it was there


def test_a_second_worker_under_a_live_workers_name_refuses_to_start_and_a_restarted_one_does_not(machine):
    first = machine("twin")
    log = refused(machine("twin", ready=False))
    assert f"a worker named '{first.node}' is already running on this machine (pid {first.process.pid})" in log
    first.kill()  # crashed: its heartbeat is still fresh, but its process is gone
    first.start().wait_ready()


def test_a_worker_under_the_name_of_a_live_worker_on_another_machine_refuses_to_start(machine):
    WorkerHeartbeat.objects.create(name=f"ghost@{socket.gethostname()}", machine="gpu-box-2", pid=4242,
                                   last_seen=timezone.now())
    log = refused(machine("ghost", ready=False))
    assert "already running on machine 'gpu-box-2'" in log and "-n gpu0@%h" in log
