"""The Celery app is configured for not losing jobs, and for JSON only."""

from __future__ import annotations

from pathlib import Path

from webapp.celery import app, broker_transport_options
from webapp.queue.lanes import PATCHES_TASK_NAME
from webapp.worker.tasks import run_style_job


def test_messages_are_json_only():
    assert app.conf.task_serializer == "json"
    assert app.conf.accept_content == ["json"]


def test_a_message_is_acknowledged_only_after_the_job_and_put_back_if_the_worker_dies():
    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True
    assert app.conf.worker_prefetch_multiplier == 1


def test_time_limits_come_from_the_settings(settings):
    assert app.conf.task_soft_time_limit == settings.JOB_SOFT_TIME_LIMIT
    assert app.conf.task_time_limit == settings.JOB_HARD_TIME_LIMIT > settings.JOB_SOFT_TIME_LIMIT


def test_redis_redelivers_only_after_the_hard_time_limit(settings):
    options = broker_transport_options("redis://localhost:6379/0", 3900, Path("/unused"))
    assert options["visibility_timeout"] > 3900
    assert options["priority_steps"] == list(range(10))


def test_the_task_is_routed_to_the_gpu_queue_and_the_patches_to_their_own():
    assert app.amqp.router.route({}, run_style_job.name)["queue"].name == "gpu"
    assert app.amqp.router.route({}, PATCHES_TASK_NAME)["queue"].name == "patches"
    assert [q.name for q in app.conf.task_queues] == ["gpu", "patches"]


def test_the_worker_keeps_no_results():
    assert app.conf.task_ignore_result is True
    assert not app.conf.result_backend
