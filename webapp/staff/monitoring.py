"""The numbers behind the staff queue dashboard and /metrics: broker queues, jobs per status,
workers (Celery's own answer plus their heartbeats), throughput, timings, failures, stuck jobs.

Nothing here may hang: the broker is read with a short socket timeout (webapp/queue/broker.py), the
workers are asked with Celery's inspect under DASHBOARD_INSPECT_TIMEOUT, and a part that
fails is reported as unavailable while the rest is still shown.
"""

from __future__ import annotations

import logging
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Min
from django.db.models.functions import TruncHour
from django.utils import timezone

from ..celery import app
from ..jobs import lifecycle
from ..models import StyleJob, WorkerHeartbeat
from ..queue import broker

log = logging.getLogger(__name__)

Status = StyleJob.Status
WINDOW = timedelta(hours=24)
LAST_FAILURES = 10
INSPECT_COMMANDS = ("ping", "active", "stats")


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0 … 100) by the nearest-rank method; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


# -- broker and workers ------------------------------------------------------------------

@dataclass
class BrokerReport:
    available: bool
    queues: dict[str, int] = field(default_factory=dict)
    unacked: int | None = None
    error: str = ""


def broker_report() -> BrokerReport:
    try:
        state = broker.read()
    except broker.BrokerUnavailable as exc:
        return BrokerReport(available=False, error=str(exc))
    if state is None:
        return BrokerReport(available=True, error="this broker's queues cannot be inspected")
    return BrokerReport(available=True, queues=state.waiting, unacked=state.unacked)


def inspect_workers(timeout: float) -> tuple[dict[str, dict], str]:
    """{node name: {"ping": …, "active": […], "stats": {…}}} of the workers that answered within
    `timeout`, and an error text ("" if the question could be asked). The three questions are
    asked at once, so the answer takes about `timeout` seconds, not three times that."""
    def ask(command: str) -> dict:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=timeout)
            inspector = app.control.inspect(timeout=timeout, connection=connection)
            return getattr(inspector, command)() or {}

    replies: dict[str, dict] = {}
    try:
        with ThreadPoolExecutor(len(INSPECT_COMMANDS)) as pool:
            answers = dict(zip(INSPECT_COMMANDS, pool.map(ask, INSPECT_COMMANDS)))
    except Exception as exc:  # the broker went away, or a reply could not be read
        log.warning("could not ask the workers: %s", exc)
        return {}, f"The workers could not be asked: {type(exc).__name__}: {exc}"
    for command, answer in answers.items():
        for node, reply in answer.items():
            replies.setdefault(node, {})[command] = reply
    return replies, ""


@dataclass
class WorkerReport:
    name: str
    online: bool
    device: str = ""
    memory_used: int | None = None
    memory_total: int | None = None
    pid: int | None = None
    last_seen: datetime | None = None
    job_ids: list[str] = field(default_factory=list)  # what Celery says it is running now
    processes: int | None = None
    tasks_done: int | None = None


def heartbeat_cutoff(now: datetime) -> datetime:
    """A worker whose last heartbeat is older than this is offline (WORKER_OFFLINE_AFTER_SECONDS)."""
    return now - timedelta(seconds=settings.WORKER_OFFLINE_AFTER_SECONDS)


def worker_reports(replies: dict[str, dict], asked: bool, now: datetime) -> list[WorkerReport]:
    """Every worker that answered, or wrote a heartbeat in the last 24 h. Online means it
    answered just now; if it could not be asked (broker down), a fresh heartbeat decides."""
    fresh = heartbeat_cutoff(now)
    beats = {hb.name: hb for hb in WorkerHeartbeat.objects.filter(last_seen__gte=now - WINDOW)}
    names = sorted(set(beats) | set(replies))
    reports = []
    for name in names:
        beat, reply = beats.get(name), replies.get(name, {})
        online = "ping" in reply if asked else bool(beat and beat.last_seen >= fresh)
        stats = reply.get("stats") or {}
        report = WorkerReport(
            name=name, online=online, job_ids=[_job_id(task) for task in reply.get("active") or []],
            processes=len((stats.get("pool") or {}).get("processes") or []) or None,
            tasks_done=sum((stats.get("total") or {}).values()) if stats else None)
        if beat is not None:
            report.device, report.pid, report.last_seen = beat.device, beat.pid, beat.last_seen
            report.memory_used, report.memory_total = beat.device_memory_used_bytes, beat.device_memory_bytes
            if not report.job_ids and beat.current_job_id and online:
                report.job_ids = [str(beat.current_job_id)]
        reports.append(report)
    return reports


def _job_id(task: dict) -> str:
    args = task.get("args") or []
    return str(args[0]) if args else str(task.get("id", ""))


# -- jobs ------------------------------------------------------------------------------------

def jobs_by_status() -> dict[str, int]:
    counts = dict(StyleJob.objects.order_by().values_list("status").annotate(n=Count("pk")))
    return {status: counts.get(status, 0) for status in Status.values}


def throughput(now: datetime) -> list[dict]:
    """Jobs finished per hour over the last 24 h, oldest first: {"hour", "succeeded", "failed"}."""
    start = (now - WINDOW).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    rows = (StyleJob.objects.filter(finished__gte=start, status__in=(Status.SUCCEEDED, Status.FAILED))
            .annotate(hour=TruncHour("finished")).order_by().values("hour", "status").annotate(n=Count("pk")))
    buckets = {start + timedelta(hours=i): {"succeeded": 0, "failed": 0} for i in range(24)}
    for row in rows:
        hour = row["hour"]
        if hour in buckets:
            buckets[hour][row["status"]] = row["n"]
    return [{"hour": hour.isoformat(), **counts} for hour, counts in buckets.items()]


def timings(now: datetime) -> dict[str, Any]:
    """Queue wait (created → first attempt's start) and run time (last start → finished) of the
    jobs finished in the last 24 h, p50/p95 in seconds; the failure rate among them."""
    finished = (StyleJob.objects.filter(finished__gte=now - WINDOW, status__in=(Status.SUCCEEDED, Status.FAILED))
                .annotate(first_start=Min("attempt_log__started"))
                .values_list("status", "created", "first_start", "started", "finished"))
    waits, runs, failed, total = [], [], 0, 0
    for status, created, first_start, started, ended in finished:
        total += 1
        failed += status == Status.FAILED
        if first_start or started:
            waits.append(((first_start or started) - created).total_seconds())
        if status == Status.SUCCEEDED and started:
            runs.append((ended - started).total_seconds())
    return {
        "finished": total, "failed": failed, "failure_rate": failed / total if total else None,
        "queue_wait_p50": percentile(waits, 50), "queue_wait_p95": percentile(waits, 95),
        "run_time_p50": percentile(runs, 50), "run_time_p95": percentile(runs, 95),
    }


def last_failures() -> list[dict]:
    rows = (StyleJob.objects.filter(status=Status.FAILED).select_related("owner")
            .order_by("-finished")[:LAST_FAILURES])
    return [{"id": str(job.pk), "owner": job.owner.get_username(), "finished": job.finished,
             "worker": job.worker_host, "attempts": job.attempts, "error": job.error[:300]} for job in rows]


def stuck() -> list[dict]:
    rows = lifecycle.stuck_jobs().select_related("owner").order_by("last_heartbeat")
    return [{"id": str(job.pk), "owner": job.owner.get_username(), "worker": job.worker_host,
             "attempts": job.attempts, "last_heartbeat": job.last_heartbeat, "progress": job.progress}
            for job in rows]


# -- the whole picture -------------------------------------------------------------------------

def snapshot() -> dict[str, Any]:
    """Everything the dashboard shows, JSON-ready apart from datetimes (DjangoJSONEncoder)."""
    now = timezone.now()
    queue = broker_report()
    replies, inspect_error = ({}, "The broker is unavailable.") if not queue.available else \
        inspect_workers(settings.DASHBOARD_INSPECT_TIMEOUT)
    workers = worker_reports(replies, asked=queue.available and not inspect_error, now=now)
    return {
        "generated": now,
        "broker": asdict(queue),
        "jobs_by_status": jobs_by_status(),
        "workers": [asdict(w) for w in workers],
        "workers_online": sum(w.online for w in workers),
        "inspect_error": inspect_error,
        "throughput": throughput(now),
        "timings": timings(now),
        "last_failures": last_failures(),
        "stuck": stuck(),
        "stuck_after_seconds": settings.STUCK_AFTER_SECONDS,
    }
