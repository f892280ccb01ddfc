"""What a worker says about itself: its device (GPU name and memory used/total, or the CPU and
host memory) on a heartbeat every WORKER_HEARTBEAT_SECONDS, idle or busy, so the staff
dashboard lists every worker with what it runs on.

The heartbeat runs in the worker's main process (a bootstep timer, registered by name in
webapp/celery.py); a pool process running a job writes one with each progress write
(progress.py) and one when the job ends (tasks.py). That process forks the pool, so it must never create a CUDA context:
the GPU is described through NVML (nvidia-ml-py), which does not; torch is asked only
in a process where CUDA is already initialised (a pool process running a job).
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from celery import bootsteps

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeviceReport:
    name: str
    memory_total: int | None = None  # bytes
    memory_used: int | None = None


def device_report() -> DeviceReport:
    """The GPU this process computes on, else the CPU; never raises (it is only a label)."""
    try:
        return _nvml_report() or _torch_report() or _host_report()
    except Exception:
        log.debug("could not describe the device", exc_info=True)
        return DeviceReport("unknown")


def _visible_gpu() -> str | None:
    """The GPU the engine's "auto" device picks: the first of CUDA_VISIBLE_DEVICES (an index or
    a UUID), or GPU 0 when it is unset; None when it hides every GPU."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return "0"
    first = visible.split(",")[0].strip()
    return first if first and first != "-1" else None


def _nvml_report() -> DeviceReport | None:
    gpu = _visible_gpu()
    if gpu is None:
        return None
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:  # no driver: a CPU machine
        return None
    try:
        handle = (pynvml.nvmlDeviceGetHandleByIndex(int(gpu)) if gpu.isdigit()
                  else pynvml.nvmlDeviceGetHandleByUUID(gpu))
        name = pynvml.nvmlDeviceGetName(handle)
        memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
        name = name.decode() if isinstance(name, bytes) else name
        return DeviceReport(f"{name} (GPU {gpu})", int(memory.total), int(memory.used))
    except pynvml.NVMLError:
        return None
    finally:
        pynvml.nvmlShutdown()


def _torch_report() -> DeviceReport | None:
    """Where NVML is missing: torch, but only if this process already uses CUDA."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_initialized():
        return None
    index = torch.cuda.current_device()
    free, total = torch.cuda.mem_get_info(index)
    return DeviceReport(f"{torch.cuda.get_device_name(index)} (cuda:{index})", int(total), int(total - free))


def _host_report() -> DeviceReport:
    name = f"CPU, {os.cpu_count() or '?'} threads"
    model = _proc_field("/proc/cpuinfo", "model name")
    if model:
        name = f"{name} ({model})"
    total, available = _proc_field("/proc/meminfo", "MemTotal"), _proc_field("/proc/meminfo", "MemAvailable")
    if total and available:
        total_bytes, available_bytes = _kib(total), _kib(available)
        return DeviceReport(name[:100], total_bytes, total_bytes - available_bytes)
    return DeviceReport(name[:100])


def _proc_field(path: str, key: str) -> str | None:
    try:
        for line in Path(path).read_text().splitlines():
            name, _, value = line.partition(":")
            if name.strip() == key:
                return value.strip()
    except OSError:  # not Linux
        pass
    return None


def _kib(value: str) -> int:
    return int(value.split()[0]) * 1024


def record(worker_name: str, *, pid: int, job_id=None, keep_job: bool = False,
           report: DeviceReport | None = None) -> None:
    """Write the heartbeat of the worker whose main process is `pid`: the job it works on
    (`job_id` None: idle; `keep_job`: as last reported) and its device (`report`, else asked now)."""
    from django.db.models.functions import Now
    from django.utils import timezone

    from ..models import WorkerHeartbeat  # not at import: the worker loads this step before Django is set up

    from .startup import machine_name

    report = report or device_report()
    now = timezone.now()
    # last_seen by the database's clock, as every liveness comparison is (startup.py, lifecycle.py).
    values = {"pid": pid, "last_seen": Now(), "machine": machine_name(), "device": report.name[:100],
              "device_memory_bytes": report.memory_total, "device_memory_used_bytes": report.memory_used}
    if not keep_job:
        values["current_job_id"] = job_id
    WorkerHeartbeat.objects.update_or_create(name=worker_name[:255], defaults=values,
                                             create_defaults={**values, "started": now})


class Heartbeat(bootsteps.StartStopStep):
    """A timer in the worker's main process: one heartbeat at start, then every
    WORKER_HEARTBEAT_SECONDS, and its database connection closed after each (the pool's
    children are forked from this process and must not share it)."""

    # After the start-up checks: a worker that refuses to start must not write a heartbeat first.
    requires = {"celery.worker.components:Timer", "webapp.worker.startup:StartupChecks"}

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self.timer_ref = None

    def start(self, worker) -> None:
        from django.conf import settings

        self.beat(worker)
        self.timer_ref = worker.timer.call_repeatedly(settings.WORKER_HEARTBEAT_SECONDS, self.beat, (worker,))

    def stop(self, worker) -> None:
        if self.timer_ref is not None:
            self.timer_ref.cancel()
            self.timer_ref = None

    def beat(self, worker) -> None:
        from django.db import connections

        try:
            record(worker.hostname, pid=os.getpid(), keep_job=True)  # the job, if any, is the pool process's to report
        except Exception:
            log.warning("could not record the worker's heartbeat", exc_info=True)
        finally:
            connections.close_all()
