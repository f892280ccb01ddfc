"""What a worker checks before it takes any job, and refuses to start on (the worker exits with
a message that says what to change):

* its files in a local folder the web server cannot see. With FileSystemStorage (no
  S3_BUCKET) a worker on another machine would fail every job ("No such file … uploads/…")
  while the web served 404s; MEDIA_SHARED=1 says the folder is the web's own (one machine:
  `make run`, the one-machine compose) or a shared network volume.
* a node name that a live worker on another machine (or another live process here) already
  has. Jobs record the node that runs them, and a message that comes back to that node takes
  its job over at once (webapp/jobs/lifecycle.py): two machines with one name would take over
  each other's live jobs. "Live" is a heartbeat within WORKER_OFFLINE_AFTER_SECONDS by the
  database's clock; a worker restarted on its own machine after a crash (its old process gone)
  starts as usual.

A bootstep of the worker's main process, registered by name in webapp/celery.py, before the
heartbeat's: an exception in a step's start() stops the worker with exit status 1.
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import timedelta

from celery import bootsteps

log = logging.getLogger(__name__)


class RefuseToStart(RuntimeError):
    """The worker must not run with this configuration; the message says why and what to do."""


def check_storage() -> None:
    from django.conf import settings
    from django.core.files.storage import FileSystemStorage, storages

    if isinstance(storages["default"], FileSystemStorage) and not settings.MEDIA_SHARED:
        raise RefuseToStart(
            f"this worker's files would be in the local folder MEDIA_ROOT={settings.MEDIA_ROOT}, which the web "
            f"server cannot see unless it runs on this machine with the same folder. Set S3_BUCKET (and "
            f"S3_ENDPOINT_URL, S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY) to use a bucket, or MEDIA_SHARED=1 if "
            f"this folder is the web's own (one machine) or a volume every machine shares.")


def machine_name() -> str:
    return socket.gethostname()[:255]


def check_unique_name(node: str) -> None:
    from django.conf import settings
    from django.db.models import F
    from django.db.models.functions import Now

    from ..models import WorkerHeartbeat

    live = (WorkerHeartbeat.objects.filter(name=node[:255])
            .filter(last_seen__gte=Now() - timedelta(seconds=settings.WORKER_OFFLINE_AFTER_SECONDS))
            .annotate(age=Now() - F("last_seen")).first())
    if live is None:
        return
    here = machine_name()
    if live.machine == here and (live.pid in (None, os.getpid()) or not _running(live.pid)):
        return  # this worker, restarted on its machine: the process that wrote it is gone
    where = f"machine {live.machine!r}" if live.machine != here else f"this machine (pid {live.pid})"
    raise RefuseToStart(
        f"a worker named {node!r} is already running on {where} (its heartbeat is {live.age.total_seconds():.0f} s "
        f"old). Node names must be unique across machines: start this one with another -n, e.g. "
        f"-n gpu0@%h (%h is this machine's host name, {here!r}).")


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


class StartupChecks(bootsteps.StartStopStep):
    def start(self, worker) -> None:
        from django.db import connections

        try:
            check_storage()
            check_unique_name(worker.hostname)
        except RefuseToStart as refusal:
            log.critical("refusing to start: %s", refusal)
            raise
        finally:
            connections.close_all()  # the pool's children are forked from this process
