"""The Celery app: the `gpu` queue (jobs) and the `patches` one, JSON only, and settings for not losing jobs.

Run a worker per GPU, one process each, on both queues:

    CUDA_VISIBLE_DEVICES=0 celery -A webapp worker -Q gpu,patches -c 1 -n gpu0@%h
    CUDA_VISIBLE_DEVICES=1 celery -A webapp worker -Q gpu,patches -c 1 -n gpu1@%h

CUDA_VISIBLE_DEVICES is set per worker by whoever starts it (an ops concern, not
this module's). Nothing here, nor in anything the worker's parent process
imports, touches CUDA: the prefork pool forks its children, and a CUDA context
does not survive a fork. The engine picks its device in the child, per job.

Reliability: a job's message is acknowledged only after the task returns
(acks_late), and put back when the worker process dies under it
(reject_on_worker_lost), so a crash or an OOM kill does not lose the job. The
database's attempts cap (webapp/jobs/lifecycle.py) stops a job that kills its worker every
time from going round forever. Redis re-delivers an unacknowledged message after
visibility_timeout, so that is longer than the hard time limit: a job still
running legitimately is never handed to a second worker.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from celery import Celery, signals
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

from django.conf import settings  # noqa: E402 (after DJANGO_SETTINGS_MODULE is set)

from .queue.lanes import DEFAULT_LANE, LANES, PATCHES_QUEUE, PATCHES_TASK_NAME, QUEUE, TASK_NAME  # noqa: E402

log = logging.getLogger(__name__)

VISIBILITY_MARGIN_SECONDS = 600


def broker_transport_options(broker_url: str, hard_time_limit: int, broker_dir: Path, *,
                             visibility_timeout: int | None = None, restore_every_seconds: int = 0) -> dict:
    """Options of the transport `broker_url` names."""
    scheme = broker_url.split("://", 1)[0]
    if scheme in ("redis", "rediss", "sentinel"):
        options = {
            "visibility_timeout": visibility_timeout or hard_time_limit + VISIBILITY_MARGIN_SECONDS,
            # One Redis list per priority lane, served lowest number first (queue/lanes.py).
            "priority_steps": list(range(LANES)),
            "sep": ":",
            # A command on a connection Redis no longer answers (a restart, a dropped route)
            # fails after this long instead of waiting forever; the worker then reconnects.
            "socket_timeout": 15,
        }
        if restore_every_seconds:  # look for messages past the visibility timeout this often
            options.update(unacked_restore_interval=restore_every_seconds, unacked_restore_throttle=1)
        return options
    if scheme == "filesystem":
        # One machine, no server: messages are files in a folder both sides share. A message
        # is deleted once read, its acknowledgement kept in the worker's memory only (it
        # survives a lost pool process, not a killed worker), and there are no priorities:
        # a local run's transport, not production's.
        folders = {"data_folder_in": broker_dir / "queue", "data_folder_out": broker_dir / "queue",
                   "processed_folder": broker_dir / "processed", "control_folder": broker_dir / "control"}
        for folder in folders.values():
            folder.mkdir(parents=True, exist_ok=True)
        return {**{k: str(v) for k, v in folders.items()}, "store_processed": False}
    return {}


app = Celery("webapp", include=["webapp.worker.tasks", "webapp.worker.patches"])
# Device and liveness for the dashboard, idle or busy. Named, not imported: the worker loads
# it (and this module stays the app's configuration, below everything that sends or runs jobs).
app.steps["worker"].add("webapp.worker.heartbeat:Heartbeat")
# Refuses to start with files the web cannot see, or under a node name a live worker already has.
app.steps["worker"].add("webapp.worker.startup:StartupChecks")
app.conf.update(
    broker_url=settings.CELERY_BROKER_URL,
    broker_transport_options=broker_transport_options(
        settings.CELERY_BROKER_URL, settings.JOB_HARD_TIME_LIMIT, settings.BROKER_DIR,
        visibility_timeout=settings.BROKER_VISIBILITY_TIMEOUT,
        restore_every_seconds=settings.BROKER_RESTORE_EVERY_SECONDS),
    broker_connection_retry_on_startup=True,
    # Sending a job from a web request gives up within a few seconds when the broker is down
    # (the request answers 503; webapp/jobs/lifecycle.py), rather than hanging on retries.
    broker_connection_timeout=3,
    task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1},
    # Only the job id crosses the broker, as JSON: no pickle, so no code in messages.
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    # State lives in the database (webapp/jobs/); no result backend to run or fill.
    result_backend=None,
    task_ignore_result=True,
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    # A worker holds one job at a time: a long job must not sit on messages other
    # workers could run.
    worker_prefetch_multiplier=1,
    # A running job goes on through a lost broker connection (a Redis restart): its state is in
    # the database, not the broker. Its message stays unacknowledged in Redis until the ack,
    # and a copy delivered meanwhile does not start a second run (lifecycle.claim()). Cancelling it
    # instead would leave the job "running" with no worker until the visibility timeout.
    worker_cancel_long_running_tasks_on_connection_loss=False,
    task_soft_time_limit=settings.JOB_SOFT_TIME_LIMIT,
    task_time_limit=settings.JOB_HARD_TIME_LIMIT,
    task_queues=[Queue(QUEUE, routing_key=QUEUE), Queue(PATCHES_QUEUE, routing_key=PATCHES_QUEUE)],
    task_default_queue=QUEUE,
    task_routes={TASK_NAME: {"queue": QUEUE}, PATCHES_TASK_NAME: {"queue": PATCHES_QUEUE}},
    task_default_priority=DEFAULT_LANE,
    worker_max_tasks_per_child=settings.CELERY_WORKER_MAX_TASKS_PER_CHILD or None,
    worker_send_task_events=False,
    timezone=settings.TIME_ZONE,
    enable_utc=True,
)


@signals.setup_logging.connect
def use_django_logging(**_kwargs) -> None:
    """One logging configuration, settings.LOGGING (level LOG_LEVEL), for the web server and the
    workers: with a receiver for this signal Celery leaves logging alone (and ignores --loglevel)."""
    from logging.config import dictConfig

    dictConfig(settings.LOGGING)
