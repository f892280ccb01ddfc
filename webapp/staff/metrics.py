"""/metrics in the Prometheus text format (version 0.0.4), computed from the database and the
broker at each scrape, so every web process answers the same (no per-process counters).

    stylize_broker_up                         1 if the broker answered
    stylize_queue_depth{queue}                messages waiting for a worker
    stylize_queue_unacked                     delivered, not yet acknowledged
    stylize_jobs{status}                      jobs per status now
    stylize_job_run_seconds_bucket{le}        engine run time of succeeded jobs (histogram)
    stylize_workers_online                    workers with a heartbeat in WORKER_OFFLINE_AFTER_SECONDS
    stylize_worker_memory_{used,total}_bytes{worker,device}

Workers online are counted from their heartbeats, not by asking them (a scrape must be cheap
and quick); the dashboard asks them.
"""

from __future__ import annotations

from typing import Iterable

from django.db.models import Count, Q, Sum
from django.utils import timezone

from . import monitoring
from ..models import StyleJob, WorkerHeartbeat

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
RUN_SECONDS_BUCKETS = (5, 10, 30, 60, 120, 300, 600, 1800, 3600)


def _escape(value) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{key}="{_escape(value)}"' for key, value in labels.items()) + "}"


def _number(value: float) -> str:
    """Whole numbers in full (byte counts), others as Python writes them."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _family(name: str, kind: str, help_text: str, samples: Iterable[tuple[str, dict, float]]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    lines += [f"{sample}{_labels(**labels)} {_number(value)}" for sample, labels, value in samples]
    return lines


def run_time_histogram() -> tuple[list[int], int, float]:
    """Cumulative counts per RUN_SECONDS_BUCKETS bound, total count and sum, in one query."""
    done = StyleJob.objects.filter(status=StyleJob.Status.SUCCEEDED, elapsed_seconds__isnull=False)
    buckets = {f"le_{i}": Count("pk", filter=Q(elapsed_seconds__lte=bound))
               for i, bound in enumerate(RUN_SECONDS_BUCKETS)}
    row = done.aggregate(**buckets, count=Count("pk"), total=Sum("elapsed_seconds"))
    return [row[f"le_{i}"] for i in range(len(RUN_SECONDS_BUCKETS))], row["count"], row["total"] or 0.0


def render() -> str:
    queue = monitoring.broker_report()
    lines = _family("stylize_broker_up", "gauge", "Whether the broker answered this scrape.",
                    [("stylize_broker_up", {}, 1 if queue.available else 0)])
    lines += _family("stylize_queue_depth", "gauge", "Messages waiting for a worker, per queue.",
                     [("stylize_queue_depth", {"queue": name}, n) for name, n in queue.queues.items()])
    if queue.unacked is not None:
        lines += _family("stylize_queue_unacked", "gauge", "Messages delivered to a worker, not yet acknowledged.",
                         [("stylize_queue_unacked", {}, queue.unacked)])
    lines += _family("stylize_jobs", "gauge", "Jobs per status.",
                     [("stylize_jobs", {"status": s}, n) for s, n in monitoring.jobs_by_status().items()])
    cumulative, count, total = run_time_histogram()
    samples = [("stylize_job_run_seconds_bucket", {"le": f"{bound:g}"}, n)
               for bound, n in zip(RUN_SECONDS_BUCKETS, cumulative)]
    samples += [("stylize_job_run_seconds_bucket", {"le": "+Inf"}, count),
                ("stylize_job_run_seconds_count", {}, count), ("stylize_job_run_seconds_sum", {}, total)]
    lines += _family("stylize_job_run_seconds", "histogram", "Engine run time of succeeded jobs.", samples)
    online = list(WorkerHeartbeat.objects.filter(last_seen__gte=monitoring.heartbeat_cutoff(timezone.now())))
    lines += _family("stylize_workers_online", "gauge", "Workers that wrote a heartbeat recently.",
                     [("stylize_workers_online", {}, len(online))])
    for kind, attribute in (("used", "device_memory_used_bytes"), ("total", "device_memory_bytes")):
        name = f"stylize_worker_memory_{kind}_bytes"
        lines += _family(name, "gauge", f"Memory {kind} on the device of each online worker.",
                         [(name, {"worker": w.name, "device": w.device}, getattr(w, attribute))
                          for w in online if getattr(w, attribute) is not None])
    return "\n".join(lines) + "\n"
